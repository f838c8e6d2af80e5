import Foundation
import IdeficsCheckpoint

/// The decoder's hyper-parameters: `text_config` of an Idefics2 config.json, or a Mistral / Llama config.json.
/// Absent fields take transformers 5.23's `MistralConfig` / `LlamaConfig` defaults (the two differ in the MLP width,
/// the KV heads, the context and the sliding window, which Llama does not have).
public struct MistralConfig: Sendable, Equatable {
    /// The config class whose defaults apply (`model_type`).
    public enum Family: String, Sendable, CaseIterable {
        case mistral, llama
    }

    public var family: Family
    public var vocabSize: Int
    /// Idefics v1's decoupled vocabulary: ids `vocabSize..<vocabSize + additionalVocabSize` have embedding and output
    /// rows in tensors of their own (`additional_embedding`, `additional_fc`).
    public var additionalVocabSize = 0
    /// Every id the decoder embeds and scores.
    public var fullVocabSize: Int { vocabSize + additionalVocabSize }
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layerCount: Int
    public var headCount: Int
    public var keyValueHeadCount: Int
    public var headDim: Int
    public var rmsNormEps: Float
    public var ropeTheta: Double
    public var slidingWindow: Int?
    public var maxPositionEmbeddings: Int
    /// The output projection is the embedding matrix (no `lm_head.weight`).
    public var tieWordEmbeddings: Bool

    /// Values transformers' config class takes when `object` leaves them out; `defaults` overrides them first
    /// (Idefics2Config's own defaults for a missing `text_config`).
    public init(_ object: ConfigObject, family: Family, defaults: [String: Any] = [:]) throws {
        let o = ConfigObject(path: object.path, prefix: object.prefix, values: defaults.merging(object.values) { $1 })
        self.family = family
        vocabSize = try o.positiveInt("vocab_size", default: 32000)
        hiddenSize = try o.positiveInt("hidden_size", default: 4096)
        intermediateSize = try o.positiveInt("intermediate_size", default: family == .mistral ? 14336 : 11008)
        layerCount = try o.positiveInt("num_hidden_layers", default: 32)
        headCount = try o.positiveInt("num_attention_heads", default: 32)
        // MistralConfig types num_key_value_heads as int (null is refused); LlamaConfig takes null as "all heads".
        let kvHeads = family == .mistral ? try o.int("num_key_value_heads", default: 8)
            : try o.nullableInt("num_key_value_heads", default: nil) ?? headCount
        keyValueHeadCount = kvHeads
        headDim = try o.nullableInt("head_dim", default: nil) ?? hiddenSize / headCount
        rmsNormEps = try o.positiveFloat("rms_norm_eps", default: 1e-6)
        slidingWindow = family == .mistral ? try o.nullableInt("sliding_window", default: 4096) : nil
        maxPositionEmbeddings = try o.positiveInt("max_position_embeddings", default: family == .mistral ? 131072 : 2048)
        tieWordEmbeddings = try o.bool("tie_word_embeddings", default: false)
        ropeTheta = try Self.ropeTheta(o)
        _ = try o.choice("hidden_act", default: "silu", supported: ["silu"], what: "this activation")
        if family == .llama {
            for key in ["attention_bias", "mlp_bias"] where try o.bool(key, default: false) {
                throw o.error(key, "is true: biases in the decoder's projections are not supported")
            }
        }
        guard kvHeads > 0, headCount % kvHeads == 0 else {
            throw o.error("num_key_value_heads", "is \(kvHeads): num_attention_heads \(headCount) must be a multiple of it")
        }
        if let window = slidingWindow, window <= 0 { throw o.error("sliding_window", "is \(window); it must be positive") }
        // The rotary embedding turns pairs of the head's dimensions (rotate_half splits it in two halves).
        guard headDim > 0, headDim % 2 == 0, headDim <= ConfigObject.sizeLimit else {
            throw o.error(o.values["head_dim"] is NSNumber ? "head_dim" : "hidden_size",
                          "gives a head size of \(headDim); it must be even and positive")
        }
        guard ropeTheta > 0, ropeTheta.isFinite else {
            throw o.error(o.values["rope_parameters"] is [String: Any] ? "rope_parameters.rope_theta" : "rope_theta",
                          "is \(ropeTheta); it must be a finite number > 0")
        }
    }

    /// transformers 5 keeps the base in `rope_parameters`; older files have `rope_theta` (and maybe `rope_scaling`)
    /// at the top level. Only the plain (`default`) rotary embedding is implemented.
    private static func ropeTheta(_ o: ConfigObject) throws -> Double {
        let legacyTheta = try o.double("rope_theta", default: 10000)
        for key in ["rope_parameters", "rope_scaling"] {
            guard let rope = try o.object(key) else { continue }
            let type = try rope.nullableString("rope_type", default: nil) ?? rope.string("type", default: "default")
            guard type == "default" else {
                throw rope.error("rope_type", "is \"\(type)\": only the default rotary embedding is supported")
            }
            if key == "rope_parameters" { return try rope.double("rope_theta", default: legacyTheta) }
        }
        return legacyTheta
    }
}
