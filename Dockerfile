# One image for every role: `all` (default), `gateway`, `user-service`, `ai-service`, `migrate`,
# `seed`, plus the tools (`registry list`, `probe`, `sign`). Build with
#   docker build -t aisaas .        (or: buildah bud -t aisaas .)
# and run e.g. `docker run -p 9000:9000 aisaas` or `docker run aisaas gateway`.

ARG SWIFT_IMAGE=swift:6.3-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${SWIFT_IMAGE} AS build
WORKDIR /src
# The manifest first, so that dependency resolution is cached while only sources change.
COPY Package.swift ./
RUN mkdir -p Sources Tests && swift package resolve
COPY Sources Sources
COPY Tests Tests
COPY Protos Protos
# The manifest's tool targets (the fake provider, the gRPC bench) live there.
COPY bench bench
# The Swift runtime linked in: the runtime image needs no Swift toolchain.
RUN swift build -c release --product aisaas --static-swift-stdlib
# The binary and its resource bundle (the OpenAPI document), found next to it at run time.
RUN mkdir -p /out \
    && cp "$(swift build -c release --show-bin-path)/aisaas" /out/aisaas \
    && cp -R "$(swift build -c release --show-bin-path)/aisaas_Gateway.resources" /out/

FROM ${RUNTIME_IMAGE}
# ffmpeg transcodes speech; ca-certificates for providers over TLS; tzdata for log times.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg ca-certificates tzdata libstdc++6 zlib1g \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/aisaas --create-home aisaas
COPY --from=build /out/ /usr/local/bin/
USER 10001:10001
WORKDIR /var/lib/aisaas
# Listen on every address inside the container; DATA_DIR holds SQLite files and generated
# secrets (mount a volume there, or use PostgreSQL and give the secrets).
ENV DATA_DIR=/var/lib/aisaas \
    HTTP_HOST=0.0.0.0 \
    USER_SERVICE_HOST=0.0.0.0 \
    AI_SERVICE_HOST=0.0.0.0 \
    METRICS_HOST=0.0.0.0 \
    LOG_FORMAT=json
EXPOSE 9000 9101 9102 9464
# For `all` and `gateway`; the services' own check is `aisaas probe --grpc 127.0.0.1:9101` (or
# 9102), set per container by compose and Kubernetes.
HEALTHCHECK --interval=10s --timeout=4s --start-period=20s --retries=3 \
    CMD ["aisaas", "probe", "http://127.0.0.1:9000/health"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["aisaas"]
CMD ["all"]
