# syntax=docker/dockerfile:1
# CHKV: both binaries in one small image.
#
#   docker build --build-arg CHKV_GIT_COMMIT=$(git rev-parse --short=12 HEAD) -t chkv .
#   docker run --rm chkv --version          # the DataNode; --entrypoint chkv-namenode for the other
#
# The build stage compiles the release binaries; the runtime stage is distroless (glibc and
# libgcc, no shell, no package manager) and runs as an unprivileged user.

FROM rust:1-bookworm AS build
WORKDIR /src
# The commit for `--version` (the build context has no .git).
ARG CHKV_GIT_COMMIT=unknown
ENV CHKV_GIT_COMMIT=${CHKV_GIT_COMMIT}
COPY . .
# Cache mounts keep the registry and the build between builds (BuildKit).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p chkv-namenode -p chkv-datanode \
    && install -D -m 0755 target/release/chkv-namenode /out/chkv-namenode \
    && install -D -m 0755 target/release/chkv-datanode /out/chkv-datanode

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
# RESP (DataNode), NameNode: DataNodes, clients, HTTP. The admin port (20000) stays on the
# container's loopback unless --admin-bind says otherwise.
EXPOSE 10100 10101 10102 10180
USER nonroot
# Containers are reached from outside their loopback; every other flag keeps its default
# (see README, "Flags, environment and config file": CHKV_* variables work here). A NameNode,
# or a DataNode with a NameNode, also needs the cluster secret (CHKV_CLUSTER_SECRET or
# --cluster-secret-file) to listen there; a standalone DataNode does not.
ENV CHKV_BIND=0.0.0.0 CHKV_NAMENODE_BIND=0.0.0.0
ENTRYPOINT ["/usr/local/bin/chkv-datanode"]
