# syntax=docker/dockerfile:1
# Multi-stage build of cofferd, coffer and coffer-audit into a minimal,
# non-root image. The binaries are static (no cgo), so the runtime stage
# needs no libc.
#
# Base images are pinned by digest, so a rebuild uses exactly the bytes that
# were reviewed; the tag stays beside it for people. To move to a newer
# image: `crane digest golang:1.26-bookworm` (or `docker buildx imagetools
# inspect`), replace the digest, rebuild, run the tests, and note it in
# CHANGELOG.md.

FROM golang:1.26-bookworm@sha256:9fdc884aacc3bec89b20ffc69f4bb369c78210e3e4f600387b5128b12c199f81 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/bin/ ./cmd/cofferd ./cmd/coffer ./cmd/coffer-audit \
 && mkdir -p /out/keys /out/data/blobs \
 && chown -R 65532:65532 /out/keys /out/data

FROM gcr.io/distroless/static-debian12:nonroot@sha256:afa5c872c891853ca7fcf1f12c3edb23f7eeef36189728842dd51042ff57f7ab
COPY --from=build /out/bin/ /usr/local/bin/
# Empty named volumes mounted here are initialised from these directories,
# ownership included, so the non-root server can write to them.
COPY --from=build --chown=65532:65532 /out/keys /keys
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
EXPOSE 8080
# The image has no shell and no curl: cofferd probes itself. healthcheck
# asks /readyz (database reachable, schema current) on COFFER_ADDR (default
# :8080, probed on loopback), over TLS when COFFER_TLS_CERT is set.
HEALTHCHECK --interval=15s --timeout=6s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/cofferd", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/cofferd"]
