#!/bin/bash
# Entry point of the accelerator images: load the vendor toolkit's environment
# (Ascend CANN, Hygon DTK) when the image carries one, then become `voxfarm`.
# Kubernetes passes only arguments (`worker ...`, `pool ...`), so the toolkit
# environment is always in place, whatever the pod's command line.
for env_file in \
    /usr/local/Ascend/ascend-toolkit/set_env.sh \
    /usr/local/Ascend/cann-*/share/info/ascendnpu-ir/bin/set_env.sh \
    /usr/local/Ascend/nnal/atb/set_env.sh \
    /opt/dtk/env.sh; do
    if [ -f "$env_file" ]; then
        # shellcheck disable=SC1090
        . "$env_file"
    fi
done
exec voxfarm "$@"
