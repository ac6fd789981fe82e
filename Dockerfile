# The coordinator-only binary (cmd/lockstep-coordinator, as /lockstep) in an
# image, for the coordinator Deployment that
# `lockstep lab up --provider kind|eks|existing` installs on the hub
# (--coordinator-image). `make image` builds the same image without a
# Docker daemon (hack/image: linux/amd64 and arm64, user 65532, SPDX SBOMs),
# and is what the project's machines use; this file is for people who
# prefer `docker build -t REGISTRY/lockstep:TAG .`.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags=-s -o /out/lockstep ./cmd/lockstep-coordinator

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/lockstep /lockstep
USER 65532:65532
ENTRYPOINT ["/lockstep"]
