# syntax=docker/dockerfile:1
# Multi-stage build: compile with the Rust toolchain, ship only the binary on
# a distroless base that runs as a non-root user.
#   docker build -t bindgate .
#   docker run --rm -v $PWD/gateway.toml:/etc/bindgate/gateway.toml:ro \
#     -v $PWD/certs:/etc/bindgate/certs:ro -p 8443:8443 bindgate

FROM rust:1-bookworm AS build
WORKDIR /src
# Everything Cargo.toml names must be here, or cargo refuses the manifest:
# the declared bench included. scripts/check-docker-context.sh (run by CI)
# builds from exactly these COPY lines.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin bindgate \
 && strip target/release/bindgate \
 && ./target/release/bindgate completions bash > /bindgate.bash \
 && ./target/release/bindgate man > /bindgate.1

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/bindgate /usr/local/bin/bindgate
COPY --from=build /bindgate.1 /usr/local/share/man/man1/bindgate.1
USER nonroot:nonroot
EXPOSE 8443 9901
# Relative paths in the config resolve against its directory (/etc/bindgate).
ENTRYPOINT ["/usr/local/bin/bindgate"]
CMD ["run", "--config", "/etc/bindgate/gateway.toml"]
