# The image the Helm chart runs: the three commands, static, as non-root.
#   docker build -t ghcr.io/flotilla-io/flotilla:0.1.0 .
# (This repository's tests need no container runtime and do not build it.)
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd cmd
COPY pkg pkg
RUN CGO_ENABLED=0 go build -trimpath -ldflags=-s -o /out/ \
    ./cmd/controller-manager ./cmd/proxy-scheduler ./cmd/candidate-scheduler ./cmd/flotillactl

FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/ /
USER 65532:65532
ENTRYPOINT ["/controller-manager"]
