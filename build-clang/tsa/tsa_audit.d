build-clang/tsa/tsa_audit.o: tsa/tsa_audit.c tsa/tsa_audit.h \
  common/clock.h tsa/tsa_request.h tsa/tsa_token.h common/signer.h \
  tsa/tsa_config.h common/der.h common/status.h

tsa/tsa_audit.h:

common/clock.h:

tsa/tsa_request.h:

tsa/tsa_token.h:

common/signer.h:

tsa/tsa_config.h:

common/der.h:

common/status.h:
