package keyvault_test

import (
	"runtime"
	"strconv"
)

func itoa(i int) string { return strconv.Itoa(i) }

func isUnixLike() bool { return runtime.GOOS != "darwin" && runtime.GOOS != "windows" }
