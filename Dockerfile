# ace-str training image. By default a small CPU image; for GPUs build on a CUDA PyTorch base:
#   docker build -t ace-str .                                                  # CPU
#   docker build -t ace-str:cuda \
#     --build-arg BASE=pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime .         # CUDA
#   docker run --rm -v "$PWD/outputs:/app/outputs" ace-str                     # the Quickstart job
#   docker run --rm --gpus all --shm-size 8g -v "$PWD/outputs:/app/outputs" -v /data:/data \
#     ace-str:cuda torchrun --nproc_per_node=gpu train.py experiment=crnn_ace \
#     data.train_roots=[/data/MJ]                                              # several GPUs
ARG BASE=python:3.11-slim
FROM ${BASE}

# Where pip finds torch when the base image has none: the CPU wheels (no 2 GB of CUDA libraries).
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MPLBACKEND=Agg

# Fonts for the synthetic word renderer (it scans /usr/share/fonts and matplotlib's fonts):
# scripts/install_fonts.sh's list, as .ci/run installs it, strict here so a missing package
# fails the build; fonts-wqy-microhei (1.6 MB, against 56 MB for fonts-noto-cjk) draws the
# Chinese lines.
COPY scripts/install_fonts.sh /tmp/install_fonts.sh
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        fonts-dejavu-core fonts-liberation fonts-noto-core fonts-wqy-microhei fontconfig \
    && bash /tmp/install_fonts.sh --strict \
    && rm -rf /var/lib/apt/lists/* /tmp/install_fonts.sh

WORKDIR /app

# The package first, so editing configs or scripts does not reinstall the dependencies.
COPY pyproject.toml README.md ./
COPY ace_str ./ace_str
RUN if python -c "import torch" 2>/dev/null; then \
        pip install . ; \
    else \
        pip install --extra-index-url "${TORCH_INDEX}" . ; \
    fi \
    && python -c "import torch, ace_str; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

COPY configs ./configs
COPY scripts ./scripts
COPY data/charsets ./data/charsets
COPY train.py evaluate.py read.py ./

# Fail the build, not the first run, when the renderer finds no usable font.
RUN python -c "from ace_str.data.synth.fonts import find_fonts; n = len(find_fonts()); \
    print(n, 'usable fonts'); assert n >= 5, 'system fonts missing'"

# Hydra writes every run under outputs/<experiment>/<date_time>/: mount it to keep them.
VOLUME ["/app/outputs"]
CMD ["python", "train.py", "experiment=crnn_ace"]
