build-clang/common/config.o: common/config.c common/config.h \
  common/status.h

common/config.h:

common/status.h:
