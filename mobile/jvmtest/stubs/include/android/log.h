/*
 * Desktop stand-in for the NDK's <android/log.h>, so that the gobind glue
 * builds as a shared library for the desktop JVM (without -llog). The glue
 * logs only on fatal errors; they go to stderr here.
 */
#ifndef COFFER_JVMTEST_ANDROID_LOG_H
#define COFFER_JVMTEST_ANDROID_LOG_H
#include <stdio.h>

#define ANDROID_LOG_VERBOSE 2
#define ANDROID_LOG_DEBUG 3
#define ANDROID_LOG_INFO 4
#define ANDROID_LOG_WARN 5
#define ANDROID_LOG_ERROR 6
#define ANDROID_LOG_FATAL 7

#define __android_log_print(prio, tag, ...) \
	(fprintf(stderr, "%s: ", (tag)), fprintf(stderr, __VA_ARGS__), fputc('\n', stderr))
#define __android_log_write(prio, tag, text) fprintf(stderr, "%s: %s\n", (tag), (text))

#endif
