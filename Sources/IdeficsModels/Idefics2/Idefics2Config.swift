import Foundation
import IdeficsCheckpoint

/// The SigLIP vision tower's hyper-parameters (`vision_config`; defaults of `Idefics2VisionConfig`).
public struct VisionConfig: Sendable, Equatable {
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layerCount: Int
    public var headCount: Int
    public var channelCount: Int
    public var imageSize: Int
    public var patchSize: Int
    public var layerNormEps: Float

    /// Side of the learned position grid (70 for idefics2-8b's 980 px / 14 px patches).
    public var patchesPerSide: Int { imageSize / patchSize }

    public init(_ o: ConfigObject) throws {
        hiddenSize = try o.positiveInt("hidden_size", default: 768)
        intermediateSize = try o.positiveInt("intermediate_size", default: 3072)
        layerCount = try o.positiveInt("num_hidden_layers", default: 12)
        headCount = try o.positiveInt("num_attention_heads", default: 12)
        channelCount = try o.positiveInt("num_channels", default: 3)
        imageSize = try o.positiveInt("image_size", default: 224)
        patchSize = try o.positiveInt("patch_size", default: 32)
        layerNormEps = try o.positiveFloat("layer_norm_eps", default: 1e-6)
        _ = try o.choice("hidden_act", default: "gelu_pytorch_tanh", supported: ["gelu_pytorch_tanh"],
                         what: "this activation")
        guard hiddenSize % headCount == 0 else {
            throw o.error("num_attention_heads", "is \(headCount): hidden_size \(hiddenSize) must be a multiple of it")
        }
        guard patchSize <= imageSize else { throw o.error("patch_size", "is \(patchSize), larger than image_size \(imageSize)") }
    }
}

/// The perceiver resampler's hyper-parameters (`perceiver_config`; defaults of `Idefics2PerceiverConfig`).
public struct PerceiverConfig: Sendable, Equatable {
    public var hiddenSize: Int
    public var latentCount: Int
    public var depth: Int
    public var headCount: Int
    public var headDim: Int
    public var keyValueHeadCount: Int
    public var rmsNormEps: Float

    public init(_ o: ConfigObject) throws {
        hiddenSize = try o.positiveInt("hidden_size", default: 4096)
        latentCount = try o.positiveInt("resampler_n_latents", default: 64)
        depth = try o.positiveInt("resampler_depth", default: 3)
        headCount = try o.positiveInt("resampler_n_heads", default: 16)
        headDim = try o.positiveInt("resampler_head_dim", default: 96)
        keyValueHeadCount = try o.positiveInt("num_key_value_heads", default: 4)
        rmsNormEps = try o.positiveFloat("rms_norm_eps", default: 1e-6)
        _ = try o.choice("hidden_act", default: "silu", supported: ["silu"], what: "this activation")
        guard headCount % keyValueHeadCount == 0 else {
            throw o.error("num_key_value_heads", "is \(keyValueHeadCount): resampler_n_heads \(headCount) must be a multiple of it")
        }
    }
}

/// An Idefics2 config.json as transformers 5.23's `Idefics2Config` resolves it: sub-configs absent or `null` take
/// their class defaults (a missing `text_config` is MistralConfig with a 32768 context, eps 1e-5, pad 0), a
/// `text_config` without `model_type` is Mistral, and a perceiver whose width differs from the text model's takes
/// the text width and RMSNorm eps. Fields transformers ignores (4.4x's generation noise in every sub-config) are ignored.
public struct Idefics2Config: Sendable, Equatable {
    public var text: MistralConfig
    public var vision: VisionConfig
    public var perceiver: PerceiverConfig
    public var imageTokenId: Int
    public var tieWordEmbeddings: Bool

    /// Reads `config.json` of a checkpoint folder (no weights needed).
    public init(directory: URL) throws {
        try self.init(ConfigObject.required(directory: directory, by: "Idefics2"))
    }

    public init(_ config: ConfigObject) throws {
        _ = try config.choice("model_type", default: "", supported: ["idefics2"], what: "this model type")
        let textObject = try config.object("text_config")
        if let textObject {
            let type = try textObject.string("model_type", default: "mistral")
            guard let family = MistralConfig.Family(rawValue: type) else {
                throw textObject.error("model_type", "is \"\(type)\": only mistral and llama decoders are supported")
            }
            text = try MistralConfig(textObject, family: family)
        } else {
            text = try MistralConfig(ConfigObject(path: config.path, prefix: "text_config", values: [:]), family: .mistral,
                                     defaults: ["max_position_embeddings": 32768, "rms_norm_eps": 1e-5, "pad_token_id": 0])
        }
        vision = try VisionConfig(config.object("vision_config")
            ?? ConfigObject(path: config.path, prefix: "vision_config", values: [:]))
        perceiver = try PerceiverConfig(config.object("perceiver_config")
            ?? ConfigObject(path: config.path, prefix: "perceiver_config", values: [:]))
        if perceiver.hiddenSize != text.hiddenSize {
            perceiver.hiddenSize = text.hiddenSize
            perceiver.rmsNormEps = text.rmsNormEps
        }
        // Not range-checked here (transformers accepts any); the pipeline requires it to be the tokenizer's <image>.
        imageTokenId = try config.int("image_token_id", default: 32001)
        tieWordEmbeddings = try config.bool("tie_word_embeddings", default: false)
        // Idefics2ForConditionalGeneration ties its head by the top-level flag; the text config's own is unused.
        text.tieWordEmbeddings = tieWordEmbeddings
    }
}
