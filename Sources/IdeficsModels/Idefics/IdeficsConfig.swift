import Foundation
import IdeficsCheckpoint

/// An Idefics (v1, Flamingo-style) config.json as transformers 5.23's `IdeficsConfig` resolves it: a LLaMA decoder
/// with gated cross-attention blocks before every `crossLayerInterval`-th layer, reading CLIP ViT features that a
/// perceiver optionally resamples.
public struct IdeficsConfig: Sendable, Equatable {
    public struct Vision: Sendable, Equatable {
        public var embedDim, imageSize, intermediateSize, patchSize, layerCount, headCount, channelCount: Int
        public var activation: VisionActivation
        public var layerNormEps: Float

        /// `hidden_act` as the config spells it.
        public var hiddenAct: String { activation.rawValue }

        /// Patches per image (the class token comes on top).
        public var patchCount: Int { (imageSize / patchSize) * (imageSize / patchSize) }
    }

    public struct Perceiver: Sendable, Equatable {
        public var latentCount, depth, headCount, headDim: Int
        public var qkLayerNorms: Bool
    }

    /// The gates `tanh(alpha)` of a cross-attention block: one number, or one per hidden channel.
    public enum AlphaType: String, Sendable {
        case float, vector
    }

    public var crossLayerInterval: Int
    public var qkLayerNorms: Bool
    public var alphaType: AlphaType
    /// Whether the perceiver resamples the image features (the top-level flag; the perceiver config's own copy is
    /// ignored, as in transformers).
    public var useResampler: Bool
    public var vision: Vision
    public var perceiver: Perceiver
    /// The LLaMA decoder, its vocabulary decoupled into `vocab_size` + `additional_vocab_size` rows; the fields
    /// below read it (one source of truth).
    public var text: MistralConfig

    public var vocabSize: Int { text.vocabSize }
    public var additionalVocabSize: Int { text.additionalVocabSize }
    public var hiddenSize: Int { text.hiddenSize }
    public var intermediateSize: Int { text.intermediateSize }
    public var layerCount: Int { text.layerCount }
    public var headCount: Int { text.headCount }
    /// Always `silu`: the decoder's config refuses anything else.
    public var hiddenAct: String { "silu" }
    public var rmsNormEps: Float { text.rmsNormEps }
    public var ropeTheta: Double { text.ropeTheta }
    public var maxPositionEmbeddings: Int { text.maxPositionEmbeddings }
    public var tieWordEmbeddings: Bool { text.tieWordEmbeddings }

    /// Cross-attention blocks: one before each layer whose index is a multiple of the interval.
    public var crossLayerCount: Int { layerCount / crossLayerInterval }

    /// Image vectors each image gives the cross-attention: the perceiver's latents, or every patch and the class token.
    public var imageSequenceLength: Int { useResampler ? perceiver.latentCount : vision.patchCount + 1 }

    public init(directory: URL) throws {
        try self.init(ConfigObject.required(directory: directory, by: "Idefics"))
    }

    public init(_ o: ConfigObject) throws {
        _ = try o.choice("model_type", default: "", supported: ["idefics"], what: "this model type")
        text = try MistralConfig(o, family: .llama)
        text.additionalVocabSize = try o.int("additional_vocab_size", default: 0, in: 0...ConfigObject.sizeLimit)
        crossLayerInterval = try o.positiveInt("cross_layer_interval", default: 1)
        // transformers builds layers / interval blocks and indexes one before every interval-th layer: an interval
        // that does not divide the layers indexes past the last block.
        guard text.layerCount % crossLayerInterval == 0 else {
            throw o.error("cross_layer_interval", "is \(crossLayerInterval); it must divide num_hidden_layers \(text.layerCount)")
        }
        qkLayerNorms = try o.bool("qk_layer_norms", default: false)
        let alpha = try o.choice("alpha_type", default: "float", supported: ["float", "vector"], what: "this alpha_type")
        alphaType = AlphaType(rawValue: alpha)!
        useResampler = try o.bool("use_resampler", default: false)
        let v = try o.object("vision_config") ?? ConfigObject(path: o.path, prefix: "vision_config", values: [:])
        let act = try v.choice("hidden_act", default: "gelu", supported: ["gelu", "quick_gelu"], what: "this activation")
        // `hidden_size` is transformers' alias of `embed_dim`.
        let embedKey = v.values["embed_dim"] == nil && v.values["hidden_size"] != nil ? "hidden_size" : "embed_dim"
        vision = Vision(embedDim: try v.positiveInt(embedKey, default: 768),
                        imageSize: try v.positiveInt("image_size", default: 224),
                        intermediateSize: try v.positiveInt("intermediate_size", default: 5120),
                        patchSize: try v.positiveInt("patch_size", default: 14),
                        layerCount: try v.positiveInt("num_hidden_layers", default: 32),
                        headCount: try v.positiveInt("num_attention_heads", default: 16),
                        channelCount: try v.positiveInt("num_channels", default: 3),
                        activation: VisionActivation(rawValue: act)!,
                        layerNormEps: try v.positiveFloat("layer_norm_eps", default: 1e-5))
        guard vision.embedDim % vision.headCount == 0 else {
            throw v.error("num_attention_heads", "is \(vision.headCount): embed_dim \(vision.embedDim) must be a multiple of it")
        }
        guard vision.patchSize <= vision.imageSize else {
            throw v.error("patch_size", "is \(vision.patchSize), larger than image_size \(vision.imageSize)")
        }
        guard vision.channelCount == 3 else { throw v.error("num_channels", "is \(vision.channelCount); only 3 (RGB) is supported") }
        let p = try o.object("perceiver_config") ?? ConfigObject(path: o.path, prefix: "perceiver_config", values: [:])
        perceiver = Perceiver(latentCount: try p.positiveInt("resampler_n_latents", default: 64),
                              depth: try p.positiveInt("resampler_depth", default: 6),
                              headCount: try p.positiveInt("resampler_n_heads", default: 16),
                              headDim: try p.positiveInt("resampler_head_dim", default: 96),
                              qkLayerNorms: try p.bool("qk_layer_norms_perceiver", default: false))
    }
}
