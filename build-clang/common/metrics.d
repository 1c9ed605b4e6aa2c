build-clang/common/metrics.o: common/metrics.c common/metrics.h \
  common/status.h

common/metrics.h:

common/status.h:
