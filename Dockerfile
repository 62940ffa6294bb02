# syntax=docker/dockerfile:1
# Multi-stage build of cofferd, coffer and coffer-audit into a minimal,
# non-root image. The binaries are static (no cgo), so the runtime stage
# needs no libc.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/bin/ ./cmd/cofferd ./cmd/coffer ./cmd/coffer-audit \
 && mkdir -p /out/keys /out/data/blobs \
 && chown -R 65532:65532 /out/keys /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/bin/ /usr/local/bin/
# Empty named volumes mounted here are initialised from these directories,
# ownership included, so the non-root server can write to them.
COPY --from=build --chown=65532:65532 /out/keys /keys
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/cofferd"]
