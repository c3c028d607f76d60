# push-server's container image: `make image` (docker, or podman/buildah).
# The build stage compiles a static binary (CGO_ENABLED=0); the final stage
# is FROM scratch: the binary, CA certificates for APNs, FCM and Google's
# OAuth endpoint, an /etc/passwd naming the non-root user, and /data for
# the embedded store. No shell, no package manager, nothing else to patch.
# docs/deploy.md, "Container image", says how it is built and checked.

ARG GO_VERSION=1.26.8

FROM docker.io/library/golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first: a change to the code alone reuses this layer.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/push-server . \
 && mkdir -p /out/data \
 && echo 'push:x:10001:10001:push-server:/data:/nonexistent' > /out/passwd \
 && echo 'push:x:10001:' > /out/group

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/passwd /etc/passwd
COPY --from=build /out/group /etc/group
COPY --from=build --chown=10001:10001 /out/data /data
COPY --from=build /out/push-server /push-server
USER 10001:10001
# The embedded store lives in /data (mount a volume there); with REDIS_URL
# set it is unused.
ENV DATA_DIR=/data \
    PORT=3000
EXPOSE 3000
ENTRYPOINT ["/push-server"]
