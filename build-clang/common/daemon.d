build-clang/common/daemon.o: common/daemon.c common/daemon.h common/log.h

common/daemon.h:

common/log.h:
