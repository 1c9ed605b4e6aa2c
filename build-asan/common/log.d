build-asan/common/log.o: common/log.c common/log.h common/status.h

common/log.h:

common/status.h:
