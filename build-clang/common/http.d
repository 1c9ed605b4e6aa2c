build-clang/common/http.o: common/http.c common/http.h common/log.h \
  common/metrics.h common/status.h

common/http.h:

common/log.h:

common/metrics.h:

common/status.h:
