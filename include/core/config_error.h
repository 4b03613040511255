#pragma once

/*
 * What went wrong while reading the configuration, as one line an operator can act on:
 * "file:line:col: message" or "file: message". Below both config.c (the YAML) and apikey.c
 * (the key files the config names), which each report through it.
 */

#include <stdarg.h>
#include <stddef.h>

#include "macro.h"

/* "file:line:col: message" (line and column 1-based), or "file: message" without a place. */
struct config_error {
        char message[512];
};

/*
 * Writes "file:line:col: message" (line 0: "file: message") into e (when not NULL) and
 * returns r, a negative errno; errno is set to -r first, so "%m" in fmt names the error.
 */
int config_error_setv(struct config_error *e, const char *file, size_t line, size_t column, int r,
                      const char *fmt, va_list ap) _printf_(6, 0);

/* config_error_setv() without a place. */
int config_error_set(struct config_error *e, const char *file, int r, const char *fmt, ...)
        _printf_(4, 5);
#define config_error_set(...) (__extension__ config_error_set(__VA_ARGS__)) /* "%m": log.h */
