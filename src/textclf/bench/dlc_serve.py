"""Start the HF inference DLC's model server as its container does, outside the container.

Run with the DLC virtualenv's interpreter (``make dlc-venv``), by path: it imports only what the
image has (the toolkit, sagemaker_inference, MMS), never textclf. What the container's entrypoint
does is ``serving.main()``: write MMS's config from the environment, pip-install
``<model>/code/requirements.txt``, start multi-model-server and wait on it. One thing differs:
the toolkit writes that config to ``/etc/sagemaker-mms.properties``, a fixed path that two servers
on one machine would share; here it goes to the path given as the only argument. The rest comes
from the environment the caller sets, as in SageMaker: ``SAGEMAKER_BASE_DIR`` (the folder holding
``model/``, ``/opt/ml`` in the image), ``SAGEMAKER_BIND_TO_PORT``, the deploy function's variables
and any ``MMS_*`` override (the config enables ``enable_envvars_config``).
"""

from __future__ import annotations

import sys


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: dlc_serve.py MMS_CONFIG_FILE")
    from sagemaker_huggingface_inference_toolkit import mms_model_server, serving
    from sagemaker_inference import model_server

    # The toolkit reads the path from both modules: the one that writes the file, the one that
    # passes it to multi-model-server.
    model_server.MMS_CONFIG_FILE = mms_model_server.MMS_CONFIG_FILE = sys.argv[1]
    serving.main()


if __name__ == "__main__":
    main()
