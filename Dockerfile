# The lockstep binary in an image, for the coordinator Deployment that
# `lockstep lab up --provider kind|eks|existing` installs on the hub
# (--coordinator-image). Not built on the project's machines (no Docker
# daemon there): `docker build -t REGISTRY/lockstep:TAG .` and push it.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags=-s -o /out/lockstep ./cmd/lockstep

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/lockstep /lockstep
USER 65532:65532
ENTRYPOINT ["/lockstep"]
