build-clang/common/clock.o: common/clock.c common/clock.h \
  common/clock_int.h common/log.h common/status.h

common/clock.h:

common/clock_int.h:

common/log.h:

common/status.h:
