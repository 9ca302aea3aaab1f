# syntax=docker/dockerfile:1
# Multi-stage build: a static lakesink binary on a distroless base, as non-root.
#   docker build -t lakesink .
#   docker run -v $PWD/lakesink.yaml:/etc/lakesink/lakesink.yaml lakesink

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=none
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
      -o /out/lakesink ./cmd/lakesink \
 && mkdir -p /out/spool

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/lakesink /usr/local/bin/lakesink
COPY --from=build --chown=65532:65532 /out/spool /var/lib/lakesink/spool
USER 65532:65532
EXPOSE 8080
VOLUME ["/var/lib/lakesink/spool"]
# /healthz answers while the process runs; /readyz once it is joined and
# storage is reachable. Orchestrators probe these over HTTP.
ENTRYPOINT ["/usr/local/bin/lakesink"]
CMD ["run", "-c", "/etc/lakesink/lakesink.yaml"]
