import IdeficsCheckpoint
import IdeficsTensors

/// The Mistral decoder: token embeddings, `layerCount` pre-norm blocks of grouped-query attention with rotary
/// positions and a SwiGLU MLP, a final RMSNorm and an untied language-model head.
public struct Mistral: Sendable {
    public struct Layer: Sendable {
        let inputNorm: [Float]
        let query, key, value, output: Linear
        let postAttentionNorm: [Float]
        let mlp: SwiGLU
    }

    /// The activations of a forward pass, kept from layer to layer (the products share the MLP's scratch).
    struct Buffers {
        var normed: [Float] = [], query: [Float] = [], key: [Float] = [], value: [Float] = []
        var attended: [Float] = [], projected: [Float] = []
        var mlp = SwiGLU.Buffers()
    }

    /// Which rows of the final hidden states become logits.
    public enum LogitsSelection: Sendable {
        case none, last, all
        /// Every position's logits for the segments at these indices, the last position's for the others.
        case allFor(Set<Int>)
    }

    public let config: MistralConfig
    public let embedding: WeightTensor
    public let layers: [Layer]
    public let finalNorm: [Float]
    public let head: Linear
    /// The rows of `config.additionalVocabSize` extra ids (Idefics v1), or nil.
    public let additionalEmbedding: WeightTensor?
    public let additionalHead: Linear?
    let rope: RotaryEmbedding

    /// Loads the weights named `<prefix>embed_tokens.weight`, `<prefix>layers.N...`, `<prefix>norm.weight` and
    /// those of layer `lmHead` (the embedding matrix itself when the config ties them), each checked against the
    /// shape the config implies. Extra ids (`config.additionalVocabSize`) read `<prefix>embed_tokens.additional_embedding`
    /// and `<lmHead>.additional_fc`.
    public init(config: MistralConfig, checkpoint: Checkpoint, prefix: String, lmHead: String = "lm_head") throws {
        let (hidden, vocab) = (config.hiddenSize, config.vocabSize)
        let qWidth = config.headCount * config.headDim, kvWidth = config.keyValueHeadCount * config.headDim
        self.config = config
        embedding = try checkpoint.tensor(prefix + "embed_tokens.weight", shape: [vocab, hidden])
        layers = try (0..<config.layerCount).map { index in
            let p = "\(prefix)layers.\(index)."
            return Layer(
                inputNorm: try checkpoint.floats(p + "input_layernorm.weight", count: hidden),
                query: try checkpoint.linear(p + "self_attn.q_proj", out: qWidth, input: hidden),
                key: try checkpoint.linear(p + "self_attn.k_proj", out: kvWidth, input: hidden),
                value: try checkpoint.linear(p + "self_attn.v_proj", out: kvWidth, input: hidden),
                output: try checkpoint.linear(p + "self_attn.o_proj", out: hidden, input: qWidth),
                postAttentionNorm: try checkpoint.floats(p + "post_attention_layernorm.weight", count: hidden),
                mlp: try SwiGLU(checkpoint: checkpoint, prefix: p + "mlp.", input: hidden,
                                intermediate: config.intermediateSize, output: hidden))
        }
        finalNorm = try checkpoint.floats(prefix + "norm.weight", count: hidden)
        // A tied head quantizes a copy (stored as its own tensor by `idefics quantize`): the embedding lookups keep
        // reading the stored rows.
        head = Linear(weight: config.tieWordEmbeddings && !checkpoint.storesQuantized(lmHead)
                          ? checkpoint.matrix(embedding, as: lmHead + ".weight")
                          : checkpoint.matrix(try checkpoint.storedMatrix(lmHead, rows: vocab, columns: hidden)))
        rope = RotaryEmbedding(headDim: config.headDim, theta: config.ropeTheta)
        let extra = config.additionalVocabSize
        additionalEmbedding = extra == 0 ? nil
            : try checkpoint.tensor(prefix + "embed_tokens.additional_embedding.weight", shape: [extra, hidden])
        additionalHead = try additionalEmbedding.map { rows in
            Linear(weight: config.tieWordEmbeddings && !checkpoint.storesQuantized(lmHead + ".additional_fc")
                ? checkpoint.matrix(rows, as: lmHead + ".additional_fc.weight")
                : checkpoint.matrix(try checkpoint.storedMatrix(lmHead + ".additional_fc", rows: extra, columns: hidden)))
        }
    }

    /// Every matrix of the decoder: each layer's seven (q, k, v, o, gate, up, down), then the head(s).
    public var matrices: [Linear] {
        layers.flatMap { [$0.query, $0.key, $0.value, $0.output, $0.mlp.gate, $0.mlp.up, $0.mlp.down] } + [head]
            + (additionalHead.map { [$0] } ?? [])
    }

    /// Bytes of weights one decoded token reads, in the formats they are held in (quantized ones included): every
    /// matrix and norm (one embedding row is negligible).
    public var weightBytesPerToken: Int {
        let norms = layers.reduce(finalNorm.count) { $0 + $1.inputNorm.count + $1.postAttentionNorm.count }
        return matrices.reduce(4 * norms) { $0 + $1.weight.byteCount }
    }

    public func makeCache() -> KVCache {
        KVCache(layers: config.layerCount, rowWidth: config.keyValueHeadCount * config.headDim)
    }

    /// Embedding rows of `ids`, [ids.count, hidden].
    public func embed(_ ids: [Int]) -> [Float] {
        let hidden = config.hiddenSize
        var rows = [Float](repeating: 0, count: ids.count * hidden)
        rows.withUnsafeMutableBufferPointer { buffer in
            for (i, id) in ids.enumerated() {
                precondition(id >= 0 && id < config.fullVocabSize, "token id \(id) outside the vocabulary")
                if id < config.vocabSize {
                    embedding.row(id, into: buffer.baseAddress! + i * hidden)
                } else {
                    additionalEmbedding!.row(id - config.vocabSize, into: buffer.baseAddress! + i * hidden)
                }
            }
        }
        return rows
    }

    /// New positions of one sequence: embeddings [positions.count, hidden] (image features possibly spliced in)
    /// and their rotary positions.
    public struct Segment: Sendable {
        public var hidden: [Float]
        public var positions: [Int]

        public init(hidden: [Float], positions: [Int]) {
            self.hidden = hidden
            self.positions = positions
        }
    }

    /// Runs new positions of one sequence, appending their keys and values to `cache`.
    /// Returns logits for the selected rows, [rows, vocab].
    public func forward(_ hidden: [Float], positions: [Int], cache: inout KVCache, logits: LogitsSelection = .last,
                        pool: WorkerPool) -> [Float] {
        var caches = [cache]
        cache = KVCache(layers: 0, rowWidth: 0) // hand the storage over, so the caches are updated in place
        defer { cache = caches[0] }
        return forward(batch: [Segment(hidden: hidden, positions: positions)], caches: &caches, logits: logits,
                       pool: pool)[0]
    }

    /// Runs several sequences at once, each against its own cache: the matrix products see all their rows
    /// together, attention stays within each sequence, so every row equals its unbatched result.
    /// `beforeLayer(index, &x)` may rewrite the hidden states [all rows, hidden] before layer `index` (Idefics v1's
    /// gated cross-attention blocks).
    public func forward(batch: [Segment], caches: inout [KVCache], logits: LogitsSelection = .last, pool: WorkerPool,
                        beforeLayer: ((Int, inout [Float]) -> Void)? = nil) -> [[Float]] {
        precondition(batch.count == caches.count, "one cache per sequence")
        let width = config.hiddenSize
        let counts = batch.map(\.positions.count)
        for segment in batch {
            precondition(segment.hidden.count == segment.positions.count * width, "hidden states do not match the positions")
        }
        let tokens = counts.reduce(0, +)
        let offsets = counts.reduce(into: [0]) { $0.append($0.last! + $1) }
        let positions = batch.flatMap(\.positions)
        let firstSlots = caches.map(\.count)
        let window = config.slidingWindow ?? Int.max
        let shape = AttentionShape(headCount: config.headCount, keyValueHeadCount: config.keyValueHeadCount,
                                   headDim: config.headDim, precision: layers.first?.query.weight.products ?? .float32)
        let (qWidth, kvWidth) = (config.headCount * config.headDim, config.keyValueHeadCount * config.headDim)
        var x = batch.flatMap(\.hidden)
        var b = Buffers()
        let angles = rope.angles(positions: positions)
        for (index, layer) in layers.enumerated() {
            beforeLayer?(index, &x)
            Ops.rmsNorm(x, weight: layer.inputNorm, eps: config.rmsNormEps, into: &b.normed, pool: pool)
            layer.query(b.normed, tokens: tokens, into: &b.query, scratch: &b.mlp.scratch, pool: pool)
            layer.key(b.normed, tokens: tokens, into: &b.key, scratch: &b.mlp.scratch, pool: pool)
            layer.value(b.normed, tokens: tokens, into: &b.value, scratch: &b.mlp.scratch, pool: pool)
            rope.apply(&b.query, heads: config.headCount, angles: angles)
            rope.apply(&b.key, heads: config.keyValueHeadCount, angles: angles)
            b.attended.prepare(count: tokens * qWidth)
            for (row, count) in counts.enumerated() {
                let rows = offsets[row]..<offsets[row] + count
                caches[row].append(layer: index, keys: b.key[rows.lowerBound * kvWidth..<rows.upperBound * kvWidth],
                                   values: b.value[rows.lowerBound * kvWidth..<rows.upperBound * kvWidth])
                let firstSlot = firstSlots[row]
                b.query.withUnsafeBufferPointer { q in
                    b.attended.withUnsafeMutableBufferPointer { out in
                        attend(queryRows: q.baseAddress! + rows.lowerBound * qWidth, keys: caches[row].keys[index],
                               values: caches[row].values[index], shape: shape, queryCount: count, allowedSlots: { t in
                                   let slot = firstSlot + t
                                   return max(0, slot - window + 1)..<(slot + 1)
                               }, into: out.baseAddress! + rows.lowerBound * qWidth, pool: pool)
                    }
                }
            }
            layer.output(b.attended, tokens: tokens, into: &b.projected, scratch: &b.mlp.scratch, pool: pool)
            Ops.add(&x, b.projected, pool: pool)
            Ops.rmsNorm(x, weight: layer.postAttentionNorm, eps: config.rmsNormEps, into: &b.normed, pool: pool)
            layer.mlp(b.normed, tokens: tokens, into: &b.projected, buffers: &b.mlp, pool: pool)
            Ops.add(&x, b.projected, pool: pool)
        }
        for (row, count) in counts.enumerated() { caches[row].advance(by: count) }
        let selectedRows: [Range<Int>]
        switch logits {
        case .none: return batch.map { _ in [] }
        case .last: selectedRows = counts.indices.map { offsets[$0] + counts[$0] - 1..<offsets[$0] + counts[$0] }
        case .all: selectedRows = counts.indices.map { offsets[$0]..<offsets[$0] + counts[$0] }
        case .allFor(let segments):
            selectedRows = counts.indices.map { offsets[$0] + (segments.contains($0) ? 0 : counts[$0] - 1)..<offsets[$0] + counts[$0] }
        }
        let selected = selectedRows.flatMap { x[$0.lowerBound * width..<$0.upperBound * width] }
        let all = scores(Ops.rmsNorm(selected, weight: finalNorm, eps: config.rmsNormEps), tokens: selected.count / width,
                         pool: pool)
        let vocab = config.fullVocabSize
        var start = 0
        return selectedRows.map { rows in
            defer { start += rows.count * vocab }
            return Array(all[start..<start + rows.count * vocab])
        }
    }

    /// Logits [tokens, fullVocabSize] of final hidden states: the head's rows, then the additional head's.
    func scores(_ normed: [Float], tokens: Int, pool: WorkerPool) -> [Float] {
        let main = head(normed, tokens: tokens, pool: pool)
        guard let additionalHead else { return main }
        let extra = additionalHead(normed, tokens: tokens, pool: pool)
        let (vocab, added) = (config.vocabSize, config.additionalVocabSize)
        var out = [Float]()
        out.reserveCapacity(tokens * (vocab + added))
        for t in 0..<tokens {
            out += main[t * vocab..<(t + 1) * vocab]
            out += extra[t * added..<(t + 1) * added]
        }
        return out
    }
}
