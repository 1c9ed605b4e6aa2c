build-clang/tsa/tsa_config.o: tsa/tsa_config.c tsa/tsa_config.h \
  common/config.h common/der.h common/log.h common/signer.h \
  common/status.h

tsa/tsa_config.h:

common/config.h:

common/der.h:

common/log.h:

common/signer.h:

common/status.h:
