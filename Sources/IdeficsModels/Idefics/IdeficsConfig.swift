import Foundation
import IdeficsCheckpoint

/// An Idefics (v1, Flamingo-style) config.json as transformers 5.23's `IdeficsConfig` resolves it: a LLaMA decoder
/// with gated cross-attention blocks every `crossLayerInterval` layers, reading CLIP ViT features that a perceiver
/// optionally resamples. Only the configuration is read today; the model itself is not implemented yet.
public struct IdeficsConfig: Sendable, Equatable {
    public struct Vision: Sendable, Equatable {
        public var embedDim, imageSize, intermediateSize, patchSize, layerCount, headCount, channelCount: Int
        public var hiddenAct: String
        public var layerNormEps: Float
    }

    public struct Perceiver: Sendable, Equatable {
        public var latentCount, depth, headCount, headDim: Int
        public var qkLayerNorms: Bool
    }

    public var vocabSize, additionalVocabSize, hiddenSize, intermediateSize, layerCount, headCount: Int
    public var hiddenAct: String
    public var rmsNormEps: Float
    public var ropeTheta: Double
    public var maxPositionEmbeddings: Int
    public var tieWordEmbeddings: Bool
    public var crossLayerInterval: Int
    public var qkLayerNorms: Bool
    /// Whether the perceiver resamples the image features (the top-level flag; the perceiver config's own copy is
    /// ignored, as in transformers).
    public var useResampler: Bool
    public var vision: Vision
    public var perceiver: Perceiver

    public init(directory: URL) throws {
        try self.init(ConfigObject.required(directory: directory, by: "Idefics"))
    }

    public init(_ o: ConfigObject) throws {
        _ = try o.choice("model_type", default: "", supported: ["idefics"], what: "this model type")
        vocabSize = try o.positiveInt("vocab_size", default: 32000)
        additionalVocabSize = try o.int("additional_vocab_size", default: 0)
        hiddenSize = try o.positiveInt("hidden_size", default: 4096)
        intermediateSize = try o.positiveInt("intermediate_size", default: 11008)
        layerCount = try o.positiveInt("num_hidden_layers", default: 32)
        headCount = try o.positiveInt("num_attention_heads", default: 32)
        hiddenAct = try o.string("hidden_act", default: "silu")
        rmsNormEps = try o.float("rms_norm_eps", default: 1e-6)
        ropeTheta = try o.object("rope_parameters")?.double("rope_theta", default: 10000) ?? 10000
        maxPositionEmbeddings = try o.positiveInt("max_position_embeddings", default: 2048)
        tieWordEmbeddings = try o.bool("tie_word_embeddings", default: false)
        crossLayerInterval = try o.positiveInt("cross_layer_interval", default: 1)
        qkLayerNorms = try o.bool("qk_layer_norms", default: false)
        useResampler = try o.bool("use_resampler", default: false)
        let v = try o.object("vision_config") ?? ConfigObject(path: o.path, prefix: "vision_config", values: [:])
        vision = Vision(embedDim: try v.positiveInt("embed_dim", default: 768),
                        imageSize: try v.positiveInt("image_size", default: 224),
                        intermediateSize: try v.positiveInt("intermediate_size", default: 5120),
                        patchSize: try v.positiveInt("patch_size", default: 14),
                        layerCount: try v.positiveInt("num_hidden_layers", default: 32),
                        headCount: try v.positiveInt("num_attention_heads", default: 16),
                        channelCount: try v.positiveInt("num_channels", default: 3),
                        hiddenAct: try v.string("hidden_act", default: "gelu"),
                        layerNormEps: try v.float("layer_norm_eps", default: 1e-5))
        let p = try o.object("perceiver_config") ?? ConfigObject(path: o.path, prefix: "perceiver_config", values: [:])
        perceiver = Perceiver(latentCount: try p.positiveInt("resampler_n_latents", default: 64),
                              depth: try p.positiveInt("resampler_depth", default: 6),
                              headCount: try p.positiveInt("resampler_n_heads", default: 16),
                              headDim: try p.positiveInt("resampler_head_dim", default: 96),
                              qkLayerNorms: try p.bool("qk_layer_norms_perceiver", default: false))
    }
}
