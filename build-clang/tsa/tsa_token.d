build-clang/tsa/tsa_token.o: tsa/tsa_token.c tsa/tsa_token.h \
  common/signer.h tsa/tsa_config.h tsa/tsa_request.h common/der.h \
  common/log.h common/status.h

tsa/tsa_token.h:

common/signer.h:

tsa/tsa_config.h:

tsa/tsa_request.h:

common/der.h:

common/log.h:

common/status.h:
