import Foundation
import IdeficsCheckpoint
import IdeficsTensors

/// Flamingo's gated cross-attention block, inserted before a LLaMA layer: text tokens attend (RMSNorm first,
/// optional RMSNorms on each head of q and k) to the vision vectors of the one image each may see; tokens that see
/// no image get nothing from it; the result enters the residual through `tanh(alpha_cross_attn)`. Then an RMSNorm'd
/// SwiGLU MLP enters through `tanh(alpha_dense)`, for every token.
struct GatedCrossAttention: Sendable {
    let inputNorm, postAttentionNorm: [Float]
    let query, key, value, output: Linear
    let queryNorm, keyNorm: [Float]?
    let mlp: SwiGLU
    /// tanh(alpha): one value or one per hidden channel.
    let attentionGate, denseGate: [Float]
    let headCount: Int
    let eps: Float

    init(config: IdeficsConfig, checkpoint: Checkpoint, prefix p: String) throws {
        let (hidden, headDim) = (config.hiddenSize, config.hiddenSize / config.headCount)
        inputNorm = try checkpoint.floats(p + "input_layernorm.weight", count: hidden)
        postAttentionNorm = try checkpoint.floats(p + "post_attention_layernorm.weight", count: hidden)
        query = try checkpoint.linear(p + "cross_attn.q_proj", out: hidden, input: hidden)
        key = try checkpoint.linear(p + "cross_attn.k_proj", out: hidden, input: config.vision.embedDim)
        value = try checkpoint.linear(p + "cross_attn.v_proj", out: hidden, input: config.vision.embedDim)
        output = try checkpoint.linear(p + "cross_attn.o_proj", out: hidden, input: hidden)
        queryNorm = config.qkLayerNorms ? try checkpoint.floats(p + "cross_attn.q_layer_norm.weight", count: headDim) : nil
        keyNorm = config.qkLayerNorms ? try checkpoint.floats(p + "cross_attn.k_layer_norm.weight", count: headDim) : nil
        mlp = try SwiGLU(checkpoint: checkpoint, prefix: p + "mlp.", input: hidden,
                         intermediate: config.intermediateSize, output: hidden)
        let alphaShape = config.alphaType == .float ? [1] : [1, 1, hidden]
        attentionGate = try checkpoint.tensor(p + "alpha_cross_attn", shape: alphaShape).floats().map(tanhf)
        denseGate = try checkpoint.tensor(p + "alpha_dense", shape: alphaShape).floats().map(tanhf)
        headCount = config.headCount
        eps = config.rmsNormEps
    }

    /// Keys and values of a request's images, [images * imageSequenceLength, hidden] each: computed once, read by
    /// every token.
    func keysAndValues(_ imageStates: [Float], slots: Int, pool: WorkerPool) -> (keys: [Float], values: [Float]) {
        var keys = key(imageStates, tokens: slots, pool: pool)
        if let keyNorm { keys = Ops.rmsNorm(keys, weight: keyNorm, eps: eps) }
        return (keys, value(imageStates, tokens: slots, pool: pool))
    }

    /// One sequence's rows of the batch and what they attend: `images[t]` is the image row t sees, or nil.
    struct Rows {
        let range: Range<Int>
        let keys, values: [Float]
        let images: [Int?]
        let imageSequenceLength: Int
    }

    /// x [all rows, hidden] in place.
    func callAsFunction(_ x: inout [Float], rows: [Rows], pool: WorkerPool) {
        let hidden = inputNorm.count
        let tokens = x.count / hidden
        let normed = Ops.rmsNorm(x, weight: inputNorm, eps: eps)
        var attended = [Float](repeating: 0, count: x.count)
        let seeing = rows.filter { $0.images.contains { $0 != nil } }
        if !seeing.isEmpty {
            var q = query(normed, tokens: tokens, pool: pool)
            if let queryNorm { q = Ops.rmsNorm(q, weight: queryNorm, eps: eps) }
            let shape = AttentionShape(headCount: headCount, keyValueHeadCount: headCount, headDim: hidden / headCount,
                                       precision: query.weight.products)
            for row in seeing {
                let length = row.imageSequenceLength
                let result = attend(queries: Array(q[row.range.lowerBound * hidden..<row.range.upperBound * hidden]),
                                    keys: row.keys, values: row.values, shape: shape, queryCount: row.range.count,
                                    allowedSlots: { t in row.images[t].map { $0 * length..<($0 + 1) * length } ?? 0..<0 },
                                    pool: pool)
                for (t, image) in row.images.enumerated() where image != nil {
                    let (source, target) = (t * hidden, (row.range.lowerBound + t) * hidden)
                    attended.replaceSubrange(target..<target + hidden, with: result[source..<source + hidden])
                }
            }
        }
        Self.addGated(&x, output(attended, tokens: tokens, pool: pool), gate: attentionGate)
        let normed2 = Ops.rmsNorm(x, weight: postAttentionNorm, eps: eps)
        Self.addGated(&x, mlp(normed2, tokens: tokens, pool: pool), gate: denseGate)
    }

    /// x += gate * y, the gate one value or one per channel.
    static func addGated(_ x: inout [Float], _ y: [Float], gate: [Float]) {
        let width = gate.count
        for i in x.indices { x[i] += gate[width == 1 ? 0 : i % width] * y[i] }
    }
}
