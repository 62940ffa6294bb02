//go:build tools

package mobile

// gobind generates glue code that imports golang.org/x/mobile/bind, so the
// module must require it even though no Go package here imports it; this
// import keeps `go mod tidy` from dropping it.
import _ "golang.org/x/mobile/bind"
