build-asan/tests/unit/check_signer_p11.o: tests/unit/check_signer_p11.c \
  common/signer_p11.c common/signer_int.h common/signer.h \
  /usr/include/p11-kit-1/p11-kit/pkcs11.h common/log.h common/status.h

common/signer_p11.c:

common/signer_int.h:

common/signer.h:

/usr/include/p11-kit-1/p11-kit/pkcs11.h:

common/log.h:

common/status.h:
