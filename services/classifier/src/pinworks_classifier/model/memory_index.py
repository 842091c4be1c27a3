"""The exact nearest training examples of a text, without reading the whole float32 memory.

The neighbour memory is stored as int8 rows with one scale each. A text's similarity to every
row is first computed in integers (onnxruntime's MatMulInteger over the int8 rows, prepacked
once: a quarter of the bytes of the float32 product, which is memory-bound), with the text
itself written as two 7-bit vectors (its rounding, then the rounding of what is left), so the
integer estimate of each similarity is within a bound known per row. Only the rows whose
estimate could still reach the k-th best are then compared in float32 exactly as before, so
the k neighbours and their similarities are the ones the full product finds.

The bound: with the text written as s1*a1 + s2*a2 + r (|r_j| <= s2/2) and row i as
scale_i*q_i, the estimate misses the real product by at most s2/2 * scale_i * |q_i|_1; the
float32 product of the dequantized row rounds by far less than `ROUNDING_SLACK`.

Why 7 bits: on x86 processors without VNNI, onnxruntime's u8 x s8 kernel multiplies with
`vpmaddubsw`, which adds two products in a saturating int16; full-range uint8 inputs (up to
255 x 128, twice) overflow it and the integer products come out wrong (by up to ~1e5 on an AVX2
EPYC), so the bound above would not hold and true neighbours were missed. Inputs within 0..127
keep every pair under 2**15 on every kernel, so the products are exact everywhere.
"""

from __future__ import annotations

import numpy as np

ROUNDING_SLACK = 1e-4  # float32 rounding of a 384-term product of unit vectors is ~2e-5 at most
_LEVELS = 63  # each query part is an integer in -63..63 ...
_ZERO_POINT = 64  # ... that goes in as uint8 1..127 (a + 64): no int16 saturation (module doc)


class MemoryIndex:
    """Integer pre-filter over an int8 memory (`q`: (n, dim), `scale`: (n,)) and the exact
    float32 re-rank against `embeddings` (the dequantized rows the artifact loads)."""

    def __init__(self, q: np.ndarray, scale: np.ndarray, embeddings: np.ndarray) -> None:
        import onnxruntime as ort

        self.embeddings = embeddings
        self._scale = scale.astype(np.float32)
        # s2 x this bounds how far any row's integer estimate can be from its real product
        l1 = np.abs(q.astype(np.int16)).sum(axis=1, dtype=np.int32)
        self._error_per_step = float((0.5 * scale.astype(np.float64) * l1).max())
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            _matmul_integer_model(np.ascontiguousarray(q.T)), options,
            providers=["CPUExecutionProvider"])

    def nearest(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Row indices (m, k) and float32 cosine similarities (m, k) of each query's k nearest
        rows (unit vectors: the largest dot products), in no particular order."""
        k = min(k, len(self.embeddings))
        parts, s1, s2 = _two_int8(queries)
        products = self._session.run(None, {"a": parts})[0].reshape(len(queries), 2, -1)
        estimate = products[:, 0].astype(np.float32)  # exact: |products| < 2**24
        estimate *= s1[:, None]
        estimate += products[:, 1].astype(np.float32) * s2[:, None]
        estimate *= self._scale
        margin = s2 * self._error_per_step + ROUNDING_SLACK
        kth = np.partition(estimate, -k, axis=1)[:, -k]
        reachable = estimate >= (kth - 2 * margin)[:, None]
        idx = np.empty((len(queries), k), np.int64)
        sims = np.empty((len(queries), k), np.float32)
        for row, query in enumerate(queries):
            candidates = np.flatnonzero(reachable[row])
            exact = self.embeddings[candidates] @ query
            best = np.argpartition(-exact, k - 1)[:k]
            idx[row], sims[row] = candidates[best], exact[best]
        return idx, sims


def _two_int8(queries: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each query as two uint8 rows (its 7-bit rounding in steps s1, then the 7-bit rounding of
    the rest in steps s2, both shifted by the zero point), and the steps (float32)."""
    x = queries.astype(np.float64)
    s1 = np.maximum(np.abs(x).max(axis=1) / _LEVELS, 1e-30)
    a1 = np.rint(x / s1[:, None])
    rest = x - a1 * s1[:, None]
    s2 = np.maximum(np.abs(rest).max(axis=1) / _LEVELS, 1e-30)
    a2 = np.rint(rest / s2[:, None])
    parts = np.stack([a1, a2], axis=1).reshape(2 * len(x), x.shape[1]) + _ZERO_POINT
    return parts.astype(np.uint8), s1.astype(np.float32), s2.astype(np.float32)


def _matmul_integer_model(b: np.ndarray) -> bytes:
    """A one-node ONNX model, `y = MatMulInteger(a, B, 64)` with B (dim, n) int8 a constant,
    serialized by hand (the service does not ship the onnx package)."""
    dim, n = b.shape
    b_init = _tensor("b", [dim, n], _INT8, b.tobytes())
    zero = _tensor("a_zero_point", [], _UINT8, bytes([_ZERO_POINT]))
    node = (_strings(1, ["a", "b", "a_zero_point"]) + _strings(2, ["y"])
            + _bytes(4, b"MatMulInteger"))
    graph = (_bytes(1, node) + _bytes(2, b"memory_scan") + _bytes(5, b_init) + _bytes(5, zero)
             + _bytes(11, _value_info("a", _UINT8, ["m", dim]))
             + _bytes(12, _value_info("y", _INT32, ["m", n])))
    opset = _bytes(1, b"") + _varint_field(2, 13)
    return _varint_field(1, 7) + _bytes(2, b"pinworks") + _bytes(7, graph) + _bytes(8, opset)


_UINT8, _INT8, _INT32 = 2, 3, 6  # onnx TensorProto.DataType


def _tensor(name: str, dims: list[int], dtype: int, raw: bytes) -> bytes:
    return (b"".join(_varint_field(1, d) for d in dims) + _varint_field(2, dtype)
            + _bytes(8, name.encode()) + _bytes(9, raw))


def _value_info(name: str, dtype: int, shape: list[int | str]) -> bytes:
    dims = b"".join(_bytes(1, _varint_field(1, d) if isinstance(d, int) else _bytes(2, d.encode()))
                    for d in shape)
    tensor_type = _varint_field(1, dtype) + _bytes(2, dims)
    return _bytes(1, name.encode()) + _bytes(2, _bytes(1, tensor_type))


def _strings(field: int, values: list[str]) -> bytes:
    return b"".join(_bytes(field, v.encode()) for v in values)


def _bytes(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _varint_field(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)
