build-clang/tsa/tsa_request.o: tsa/tsa_request.c tsa/tsa_request.h

tsa/tsa_request.h:
