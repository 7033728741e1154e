"""onnx-tensorrt's supported-operator matrix: ONNX op -> the data types TensorRT imports it with.

Transcribed from onnx/onnx-tensorrt docs/operators.md of the TensorRT 10.15 GA release ("TensorRT
10.15 supports operators in the inclusive range of opset 9 to opset 24"): rows marked "Y" in
SUPPORTED_TYPES, rows marked "N" in UNSUPPORTED. An op in neither is newer than that table.
Types are the table's names (FP32, FP16, BF16, INT32, INT64, INT8, FP8, FP4, INT4, UINT8, BOOL).
Data only: lgcnet_deploy.artifact.engine.trt_rules reads it.
"""

from __future__ import annotations

TABLE_VERSION = "onnx-tensorrt docs/operators.md, TensorRT 10.15 GA"

_BY_TYPES: dict[tuple[str, ...], tuple[str, ...]] = {
    ('FP32', 'FP16', 'BF16'): (
        'Acos', 'Acosh', 'Asin', 'Asinh', 'Atan', 'Atanh', 'AveragePool',
        'BatchNormalization', 'Ceil', 'Celu', 'Clip', 'Conv', 'ConvTranspose', 'Cos',
        'Cosh', 'CumSum', 'Dropout', 'Einsum', 'Elu', 'Erf', 'Exp', 'Floor', 'GRU', 'Gemm',
        'GlobalAveragePool', 'GlobalLpPool', 'GlobalMaxPool', 'GroupNormalization',
        'HardSigmoid', 'HardSwish', 'Hardmax', 'ImageScaler', 'InstanceNormalization',
        'IsInf', 'LRN', 'LSTM', 'LayerNormalization', 'LeakyRelu', 'Log', 'LogSoftmax',
        'LpNormalization', 'LpPool', 'MatMul', 'MaxPool', 'MeanVarianceNormalization',
        'PRelu', 'ParametricSoftplus', 'QuantizeLinear', 'RMSNormalization', 'RNN',
        'RandomNormal', 'RandomNormalLike', 'RandomUniform', 'RandomUniformLike',
        'Reciprocal', 'Resize', 'RotaryEmbedding', 'Round', 'ScaledTanh', 'Scan', 'Selu',
        'Sigmoid', 'Sin', 'Sinh', 'Softmax', 'Softplus', 'Softsign', 'Sqrt', 'Tan', 'Tanh',
        'ThresholdedRelu', 'Upsample',
    ),
    ('FP32', 'FP16', 'BF16', 'INT32', 'INT64'): (
        'Abs', 'Add', 'ArgMax', 'ArgMin', 'DepthToSpace', 'Div', 'Equal', 'Greater',
        'GreaterOrEqual', 'IsNaN', 'Less', 'LessOrEqual', 'Max', 'Min', 'Mod', 'Mul', 'Neg',
        'Pad', 'Pow', 'Range', 'ReduceL1', 'ReduceL2', 'ReduceLogSum', 'ReduceLogSumExp',
        'ReduceMax', 'ReduceMean', 'ReduceMin', 'ReduceProd', 'ReduceSum',
        'ReduceSumSquare', 'Relu', 'Scatter', 'ScatterElements', 'ScatterND', 'Shrink',
        'Sign', 'SpaceToDepth', 'Sub', 'Sum', 'TopK',
    ),
    ('FP32', 'FP16', 'BF16', 'INT32', 'INT64', 'BOOL'): (
        'Concat', 'Expand', 'EyeLike', 'Flatten', 'Gather', 'GatherElements', 'GatherND',
        'Identity', 'If', 'Loop', 'OneHot', 'Reshape', 'ReverseSequence', 'Shape', 'Size',
        'Slice', 'Split', 'Squeeze', 'Tile', 'Transpose', 'Trilu', 'Unsqueeze', 'Where',
    ),
    ('FP32', 'FP16'): (
        'BlackmanWindow', 'DeformConv', 'GridSample', 'HammingWindow', 'HannWindow', 'Mish',
        'NonMaxSuppression', 'NonZero', 'RoiAlign',
    ),
    ('BOOL',): (
        'And', 'Not', 'Or', 'Xor',
    ),
    ('FP32', 'FP16', 'BF16', 'INT32', 'INT64', 'UINT8', 'BOOL'): (
        'Cast', 'CastLike',
    ),
    ('FP32', 'FP16', 'BF16', 'FP8', 'FP4', 'INT4', 'INT32', 'INT64', 'BOOL'): (
        'Constant', 'ConstantOfShape',
    ),
    ('FP32', 'FP16', 'BF16', 'INT8', 'FP8'): (
        'Attention',
    ),
    ('INT8', 'FP8', 'FP4', 'INT4'): (
        'DequantizeLinear',
    ),
    ('FP32', 'FP16', 'BF16', 'INT8', 'INT32', 'INT64'): (
        'Gelu',
    ),
    ('FP32', 'FP16', 'BF16', 'FP8', 'INT32', 'INT64'): (
        'Mean',
    ),
    ('FP32',): (
        'STFT',
    ),
    ('FP32', 'FP16', 'BF16', 'INT32'): (
        'TensorScatter',
    ),
}

SUPPORTED_TYPES: dict[str, tuple[str, ...]] = {
    op: types for types, ops in _BY_TYPES.items() for op in ops}

UNSUPPORTED: frozenset[str] = frozenset((
    'AffineGrid', 'Bernoulli', 'BitShift', 'BitwiseAnd', 'BitwiseNot', 'BitwiseOr',
    'BitwiseXor', 'CenterCropPad', 'Col2Im', 'Compress', 'ConcatFromSequence', 'ConvInteger',
    'DFT', 'Det', 'DynamicQuantizeLinear', 'ImageDecoder', 'MatMulInteger', 'MaxRoiPool',
    'MaxUnpool', 'MelWeightMatrix', 'Multinomial', 'NegativeLogLikelihoodLoss', 'Optional',
    'OptionalGetElement', 'OptionalHasElement', 'QLinearConv', 'QLinearMatMul',
    'RegexFullMatch', 'SequenceAt', 'SequenceConstruct', 'SequenceEmpty', 'SequenceErase',
    'SequenceInsert', 'SequenceLength', 'SequenceMap', 'SoftmaxCrossEntropyLoss',
    'SplitToSequence', 'StringConcat', 'StringNormalizer', 'StringSplit', 'TfIdfVectorizer',
    'Unique',
))
