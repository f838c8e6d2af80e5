import Foundation
import IdeficsCheckpoint
import IdeficsTensors

/// The activation of a vision MLP (`hidden_act`).
public enum VisionActivation: String, Sendable, CaseIterable {
    /// SigLIP's `gelu_pytorch_tanh`.
    case geluTanh = "gelu_pytorch_tanh"
    /// Exact GELU with erf (`gelu`, CLIP ViT-H/14's).
    case gelu
    /// CLIP's `quick_gelu`: x * sigmoid(1.702 x).
    case quickGelu = "quick_gelu"

    func apply(_ x: inout [Float], pool: WorkerPool) {
        switch self {
        case .geluTanh: Ops.geluTanh(&x, pool: pool)
        case .gelu: Ops.geluErf(&x)
        case .quickGelu: Ops.quickGelu(&x)
        }
    }
}

/// One pre-norm ViT encoder layer as SigLIP and CLIP have it: LayerNorm -> bidirectional attention with biased
/// projections -> residual, LayerNorm -> fc1 -> activation -> fc2 -> residual.
struct VisionEncoderLayer: Sendable {
    let norm1Weight, norm1Bias: [Float]
    let query, key, value, output: Linear
    let norm2Weight, norm2Bias: [Float]
    let fc1, fc2: Linear

    /// Weights under `prefix` (`...encoder.layers.N.`): `layer_norm1`, `self_attn.{q,k,v,out}_proj`, `layer_norm2`,
    /// `mlp.fc1`, `mlp.fc2`.
    init(checkpoint: Checkpoint, prefix p: String, hidden: Int, intermediate: Int) throws {
        norm1Weight = try checkpoint.floats(p + "layer_norm1.weight", count: hidden)
        norm1Bias = try checkpoint.floats(p + "layer_norm1.bias", count: hidden)
        query = try checkpoint.linear(p + "self_attn.q_proj", out: hidden, input: hidden, bias: true)
        key = try checkpoint.linear(p + "self_attn.k_proj", out: hidden, input: hidden, bias: true)
        value = try checkpoint.linear(p + "self_attn.v_proj", out: hidden, input: hidden, bias: true)
        output = try checkpoint.linear(p + "self_attn.out_proj", out: hidden, input: hidden, bias: true)
        norm2Weight = try checkpoint.floats(p + "layer_norm2.weight", count: hidden)
        norm2Bias = try checkpoint.floats(p + "layer_norm2.bias", count: hidden)
        fc1 = try checkpoint.linear(p + "mlp.fc1", out: intermediate, input: hidden, bias: true)
        fc2 = try checkpoint.linear(p + "mlp.fc2", out: hidden, input: intermediate, bias: true)
    }

    /// The activations of a layer, kept for the next layer (an image's layers allocate them once).
    struct Buffers: Sendable {
        var normed: [Float] = [], query: [Float] = [], key: [Float] = [], value: [Float] = []
        var attended: [Float] = [], projected: [Float] = [], hidden: [Float] = []
        var scratch = Linear.Scratch()
    }

    /// x [count, hidden] in place, where `segments` (consecutive, from 0 to count) are images encoded together: the
    /// products and norms run over every row at once, the attention within each image.
    func callAsFunction(_ x: inout [Float], segments: [Range<Int>], headCount: Int, eps: Float,
                        activation: VisionActivation, buffers b: inout Buffers, pool: WorkerPool) {
        let count = segments.last?.upperBound ?? 0
        let shape = AttentionShape(headCount: headCount, keyValueHeadCount: headCount,
                                   headDim: norm1Weight.count / headCount, precision: query.weight.products)
        Ops.layerNorm(x, weight: norm1Weight, bias: norm1Bias, eps: eps, into: &b.normed, pool: pool)
        query(b.normed, tokens: count, into: &b.query, scratch: &b.scratch, pool: pool)
        key(b.normed, tokens: count, into: &b.key, scratch: &b.scratch, pool: pool)
        value(b.normed, tokens: count, into: &b.value, scratch: &b.scratch, pool: pool)
        attend(queries: b.query, keys: b.key, values: b.value, shape: shape, segments: segments, into: &b.attended,
               pool: pool)
        output(b.attended, tokens: count, into: &b.projected, scratch: &b.scratch, pool: pool)
        Ops.add(&x, b.projected, pool: pool)
        Ops.layerNorm(x, weight: norm2Weight, bias: norm2Bias, eps: eps, into: &b.normed, pool: pool)
        fc1(b.normed, tokens: count, into: &b.hidden, scratch: &b.scratch, pool: pool)
        activation.apply(&b.hidden, pool: pool)
        fc2(b.hidden, tokens: count, into: &b.projected, scratch: &b.scratch, pool: pool)
        Ops.add(&x, b.projected, pool: pool)
    }
}
