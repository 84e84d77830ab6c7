# carthouse server image. Build: docker build -t carthouse .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY proto ./proto
RUN cargo build --release --locked && cp target/release/carthouse /usr/local/bin/carthouse

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/carthouse /usr/local/bin/carthouse
EXPOSE 5433 50051 8080
ENTRYPOINT ["carthouse"]
CMD ["serve", "--pg-addr", "0.0.0.0:5433", "--flight-addr", "0.0.0.0:50051", "--http-addr", "0.0.0.0:8080", "--data-dir", "/var/lib/carthouse"]
