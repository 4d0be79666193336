# syntax=docker/dockerfile:1
# Vigil's container image: one static binary on distroless, running as a non-root user.
#
#   docker build -t REGISTRY/vigil:0.1.0 .
#   docker buildx build --platform linux/amd64,linux/arm64 -t REGISTRY/vigil:0.1.0 --push .
#
# Each platform builds natively (under emulation for a foreign one) against musl, so the binary needs no
# libc. The chart runs it as UID 65532 with a read-only root filesystem; the image writes nothing at run time.

FROM docker.io/library/rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Cargo reads every target the manifest declares, so the bench and example sources come along; tests do not.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY bench ./bench
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    target="$(uname -m)-unknown-linux-musl" \
 && rustup target add "$target" \
 && cargo build --release --locked --bin vigil --target "$target" \
 && install -D -m 0755 "target/$target/release/vigil" /out/vigil

FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="vigil" \
      org.opencontainers.image.description="Kubernetes validating admission webhook against workloads that slip past security monitoring"
COPY --from=build /out/vigil /usr/local/bin/vigil
USER 65532:65532
EXPOSE 8443 9090
ENTRYPOINT ["/usr/local/bin/vigil"]
CMD ["serve"]
