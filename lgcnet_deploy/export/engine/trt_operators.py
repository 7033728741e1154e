"""onnx-tensorrt's supported-operator matrix: ONNX op -> the data types TensorRT imports it with.

Transcribed from onnx/onnx-tensorrt docs/operators.md at the "ONNX-TensorRT 10.1 GA release"
commit 96e781103cfc4adf4a6bb557e94bac8e693f6f4c (rows marked "Y"; rows marked "N" are absent).
Types are the table's names (FP32, FP16, BF16, INT32, INT64, INT8, FP8, INT4, UINT8, BOOL).
Data only: lgcnet_deploy.export.engine.trt_rules reads it.
"""

from __future__ import annotations

_BY_TYPES: dict[tuple[str, ...], tuple[str, ...]] = {
    ('FP32', 'FP16', 'BF16'): (
        'Acos', 'Acosh', 'Asin', 'Asinh', 'Atan', 'Atanh', 'AveragePool', 'BatchNormalization',
        'Ceil', 'Celu', 'Clip', 'Conv', 'ConvTranspose', 'Cos', 'Cosh', 'CumSum', 'Dropout',
        'Einsum', 'Elu', 'Erf', 'Exp', 'Floor', 'GRU', 'Gemm', 'GlobalAveragePool', 'GlobalLpPool',
        'GlobalMaxPool', 'GroupNormalization', 'HardSigmoid', 'HardSwish', 'Hardmax',
        'ImageScaler', 'InstanceNormalization', 'IsInf', 'LRN', 'LSTM', 'LayerNormalization',
        'LeakyRelu', 'Log', 'LogSoftmax', 'LpNormalization', 'LpPool', 'MatMul', 'MaxPool',
        'MeanVarianceNormalization', 'PRelu', 'ParametricSoftplus', 'Pow', 'QuantizeLinear', 'RNN',
        'RandomNormal', 'RandomNormalLike', 'RandomUniform', 'RandomUniformLike', 'Reciprocal',
        'Resize', 'Round', 'ScaledTanh', 'Scan', 'Selu', 'Sigmoid', 'Sin', 'Sinh', 'Softmax',
        'Softplus', 'Softsign', 'Sqrt', 'Tan', 'Tanh', 'ThresholdedRelu', 'Upsample',
    ),
    ('FP32', 'FP16', 'BF16', 'INT32', 'INT64'): (
        'Abs', 'Add', 'ArgMax', 'ArgMin', 'DepthToSpace', 'Div', 'Equal', 'Greater',
        'GreaterOrEqual', 'IsNaN', 'Less', 'LessOrEqual', 'Max', 'Min', 'Mod', 'Mul', 'Neg', 'Pad',
        'Range', 'ReduceL1', 'ReduceL2', 'ReduceLogSum', 'ReduceLogSumExp', 'ReduceMax',
        'ReduceMean', 'ReduceMin', 'ReduceProd', 'ReduceSum', 'ReduceSumSquare', 'Relu', 'Scatter',
        'ScatterElements', 'ScatterND', 'Shrink', 'Sign', 'SpaceToDepth', 'Sub', 'Sum', 'TopK',
    ),
    ('FP32', 'FP16', 'BF16', 'INT32', 'INT64', 'BOOL'): (
        'Concat', 'Constant', 'Expand', 'EyeLike', 'Flatten', 'Gather', 'GatherElements',
        'GatherND', 'Identity', 'If', 'Loop', 'OneHot', 'Reshape', 'ReverseSequence', 'Shape',
        'Size', 'Slice', 'Split', 'Squeeze', 'Tile', 'Transpose', 'Trilu', 'Unsqueeze', 'Where',
    ),
    ('FP32', 'FP16'): (
        'DeformConv', 'GridSample', 'Mish', 'NonMaxSuppression', 'NonZero', 'RoiAlign',
    ),
    ('BOOL',): (
        'And', 'Not', 'Or', 'Xor',
    ),
    ('FP32', 'FP16', 'BF16', 'INT32', 'INT64', 'UINT8', 'BOOL'): (
        'Cast', 'CastLike',
    ),
    ('FP32', 'FP16', 'BF16', 'FP8', 'INT32', 'INT64'): (
        'Mean',
    ),
    ('FP32', 'FP16', 'BF16', 'INT32', 'INF64', 'BOOL'): (
        'ConstantOfShape',
    ),
    ('FP32', 'FP16', 'BF16', 'INT8', 'INT32', 'INT64'): (
        'Gelu',
    ),
    ('INT8', 'FP8', 'INT4'): (
        'DequantizeLinear',
    ),
}

SUPPORTED_TYPES: dict[str, tuple[str, ...]] = {
    op: types for types, ops in _BY_TYPES.items() for op in ops}
