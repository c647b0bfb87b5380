# ddctl's dream image: Debian bullseye's Caffe 1.0 (CPU) on OpenBLAS, GoogLeNet
# (bvlc_googlenet) and the dream engine (engine/, `python3 -m engine`).
#
# Build args (the README's contract):
#   WEIGHTS=download   fetch WEIGHTS_URL and check WEIGHTS_SHA1 (default: the published
#                      bvlc_googlenet.caffemodel); a failure stops the build and says what to do
#   WEIGHTS=untrained  weights Caffe initialises itself from deploy.prototxt (fixed seed):
#                      same topology and cost, meaningless pictures; for tests and offline trials
#   WEIGHTS=file       weights/user.caffemodel from the build context, checked against WEIGHTS_SHA1
#   WEIGHTS_NAME       label io.ddctl.weights for download/file (defaults bvlc_googlenet / custom)
#   WEIGHTS_SOURCE     label io.ddctl.weights.source (download: the URL without its secrets,
#                      which ddctl passes; give it with WEIGHTS_URL when building by hand;
#                      file: default user.caffemodel)
#   DDCTL_VERSION      label io.ddctl.version
#   UNTRAINED_SHA1     SHA1 the untrained weights come out with (fixed seed; checked)
# Layers go from slow and stable (apt) to fast-changing (the engine, copied last).
ARG WEIGHTS=download

# ---------------------------------------------------------------------------------------
FROM debian:bullseye-slim AS base
ARG DEBIAN_FRONTEND=noninteractive
# python3-caffe is Debian's CPU_ONLY build. Without an optimised BLAS it runs on the
# reference BLAS (18x slower, measured): install OpenBLAS and select it explicitly.
# python3-numba compiles the engine's kernels (convolutions' im2col/col2im, max pooling, LRN,
# the octaves' resize: engine/*_kernels.py, powf.py) for every core, with Caffe's numbers.
# caffe-doc is installed only to take models/bvlc_googlenet/deploy.prototxt, then purged.
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends \
        python3-caffe python3-numpy python3-pil libopenblas0-pthread python3-numba caffe-doc; \
    mkdir -p /opt/ddctl/model; \
    src="$(dpkg -L caffe-doc | grep -E '/bvlc_googlenet/deploy\.prototxt(\.gz)?$' | head -n1)"; \
    case "$src" in *.gz) gzip -dc "$src" ;; *) cat "$src" ;; esac > /opt/ddctl/model/deploy.prototxt; \
    grep -q 'name: "inception_4c/output"' /opt/ddctl/model/deploy.prototxt; \
    apt-get purge -y caffe-doc; \
    apt-get autoremove -y; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old; \
    alt="$(update-alternatives --get-selections | awk '/^libblas\.so\.3/ {print $1; exit}')"; \
    update-alternatives --set "$alt" "$(update-alternatives --list "$alt" | grep openblas-pthread)"; \
    lib="$(python3 -c 'import caffe._caffe as c; print(c.__file__)' 2>/dev/null)"; \
    blas="$(ldd "$lib" | awk '/libblas\.so\.3/ {print $3}')"; \
    readlink -f "$blas" | grep -q openblas-pthread; \
    echo "caffe uses $(readlink -f "$blas")"; \
    useradd --uid 1000 --create-home --shell /bin/bash dreamer; \
    mkdir -p /images /opt/ddctl/numba-cache; chmod 1777 /images /opt/ddctl/numba-cache
# Zoom animations (engine/zoom.py) and contact sheets (engine/sheet.py): Debian's ffmpeg
# encodes the MP4 (libx264, yuv420p) and the GIF (palettegen/paletteuse); DejaVu Sans labels
# the sheets. A layer of its own so the Caffe layer above stays cached (README: its size).
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ffmpeg fonts-dejavu-core; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old; \
    ffmpeg -hide_banner -encoders 2>/dev/null | grep -q libx264; \
    test -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
ENV GLOG_minloglevel=2 \
    NUMBA_CACHE_DIR=/opt/ddctl/numba-cache \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/tmp \
    PYTHONPATH=/opt/ddctl \
    DDCTL_PROTOTXT=/opt/ddctl/model/deploy.prototxt \
    DDCTL_WEIGHTS=/opt/ddctl/model/bvlc_googlenet.caffemodel
COPY provision/fetch-weights.py provision/init-weights.py /opt/ddctl/provision/
LABEL io.ddctl.image=deepdream

# --- one stage per weights source; the classic builder runs them all, so each does its
# --- work only when chosen and the final stage starts FROM the chosen one.
# The download runs in a stage of its own that the final image does not descend from:
# WEIGHTS_URL (which may carry a user:password or a ?token=) stays out of the image's
# `docker history` and labels; the label records WEIGHTS_SOURCE, which ddctl passes redacted.
FROM base AS weights-fetch
ARG WEIGHTS
ARG WEIGHTS_URL=http://dl.caffe.berkeleyvision.org/bvlc_googlenet.caffemodel
ARG WEIGHTS_SHA1=405fc5acd08a3bb12de8ee5e23a96bec22f08204
RUN set -e; \
    case "$WEIGHTS" in download|untrained|file) ;; \
      *) echo "ddctl: WEIGHTS must be download, untrained or file, not '$WEIGHTS'" >&2; exit 1 ;; esac; \
    if [ "$WEIGHTS" = download ]; then \
      python3 /opt/ddctl/provision/fetch-weights.py "$WEIGHTS_URL" "$WEIGHTS_SHA1" "$DDCTL_WEIGHTS"; \
      python3 /opt/ddctl/provision/init-weights.py check "$DDCTL_PROTOTXT" "$DDCTL_WEIGHTS"; \
    else \
      : > "$DDCTL_WEIGHTS"; \
    fi

FROM base AS weights-download
ARG WEIGHTS_SHA1=405fc5acd08a3bb12de8ee5e23a96bec22f08204
ARG WEIGHTS_NAME=bvlc_googlenet
# (not $WEIGHTS_URL: an ARG's expanded default is written into `docker history`)
ARG WEIGHTS_SOURCE=http://dl.caffe.berkeleyvision.org/bvlc_googlenet.caffemodel
COPY --from=weights-fetch /opt/ddctl/model/bvlc_googlenet.caffemodel /opt/ddctl/model/bvlc_googlenet.caffemodel
LABEL io.ddctl.weights=$WEIGHTS_NAME \
      io.ddctl.weights.sha1=$WEIGHTS_SHA1 \
      io.ddctl.weights.source=$WEIGHTS_SOURCE

FROM base AS weights-untrained
ARG WEIGHTS
# Caffe's initialisation with a fixed seed gives the same file on every bullseye build.
ARG UNTRAINED_SHA1=3fe61c89033092044da8265ee381d2a62adbf6ca
RUN set -e; \
    if [ "$WEIGHTS" = untrained ]; then \
      python3 /opt/ddctl/provision/init-weights.py untrained "$DDCTL_PROTOTXT" "$DDCTL_WEIGHTS"; \
      got="$(sha1sum "$DDCTL_WEIGHTS" | cut -d' ' -f1)"; \
      if [ "$got" != "$UNTRAINED_SHA1" ]; then \
        echo "ddctl: untrained weights came out with SHA1 $got, not $UNTRAINED_SHA1 (has Debian's caffe changed?); build with --build-arg UNTRAINED_SHA1=$got" >&2; \
        exit 1; \
      fi; \
    fi
LABEL io.ddctl.weights=untrained \
      io.ddctl.weights.sha1=$UNTRAINED_SHA1 \
      io.ddctl.weights.source=caffe-init

FROM base AS weights-file
ARG WEIGHTS
ARG WEIGHTS_SHA1=405fc5acd08a3bb12de8ee5e23a96bec22f08204
ARG WEIGHTS_NAME=custom
ARG WEIGHTS_SOURCE=user.caffemodel
COPY weights/ /tmp/weights/
RUN set -e; \
    if [ "$WEIGHTS" = file ]; then \
      if [ ! -s /tmp/weights/user.caffemodel ]; then \
        echo "ddctl: WEIGHTS=file needs weights/user.caffemodel in the build context; or use --weights untrained" >&2; exit 1; \
      fi; \
      got="$(sha1sum /tmp/weights/user.caffemodel | cut -d' ' -f1)"; \
      if [ "$got" != "$WEIGHTS_SHA1" ]; then \
        echo "ddctl: weights/user.caffemodel has SHA1 $got, expected $WEIGHTS_SHA1; pass its SHA1 as WEIGHTS_SHA1 (ddctl: --weights-sha1 HEX)" >&2; exit 1; \
      fi; \
      mv /tmp/weights/user.caffemodel "$DDCTL_WEIGHTS"; \
      python3 /opt/ddctl/provision/init-weights.py check "$DDCTL_PROTOTXT" "$DDCTL_WEIGHTS"; \
    fi; \
    rm -rf /tmp/weights
LABEL io.ddctl.weights=$WEIGHTS_NAME \
      io.ddctl.weights.sha1=$WEIGHTS_SHA1 \
      io.ddctl.weights.source=$WEIGHTS_SOURCE

# ---------------------------------------------------------------------------------------
FROM weights-${WEIGHTS}
ARG DDCTL_VERSION=dev
LABEL io.ddctl.image=deepdream \
      io.ddctl.version=$DDCTL_VERSION
# The working folder is not the output folder, and Python runs isolated (-I: neither the
# working folder nor PYTHONPATH on sys.path, -B: no bytecode writes): the engine imports
# only its own code, never an engine/ or numpy.py planted where pictures are written.
# A .pth in dist-packages makes /opt/ddctl importable in isolated mode.
WORKDIR /opt/ddctl
RUN echo /opt/ddctl > /usr/lib/python3/dist-packages/ddctl-engine.pth
COPY engine/ /opt/ddctl/engine/
# compile the numba kernels now (cached for every user) so dreams start at once
RUN python3 -c "from engine import caffe_net, dream; dream.warm_up(); print('numba kernels:', caffe_net.warm_up())" \
    && chmod -R a+rwX /opt/ddctl/numba-cache
USER dreamer
ENTRYPOINT ["python3", "-I", "-B", "-m", "engine"]
