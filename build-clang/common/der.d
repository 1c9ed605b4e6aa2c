build-clang/common/der.o: common/der.c common/der.h common/status.h

common/der.h:

common/status.h:
