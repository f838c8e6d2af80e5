import Foundation
import IdeficsCheckpoint

/// Which model a checkpoint folder holds, from its config.json's `model_type` and `architectures`, checked before any
/// weight is touched so that a folder we cannot run is refused with the field and the way out named.
public enum ModelFamily {
    /// `Idefics2ForConditionalGeneration`.
    case idefics2
    /// A plain decoder (`MistralForCausalLM`, `LlamaForCausalLM`) with its config object.
    case decoder(MistralConfig.Family, ConfigObject)
    /// Idefics v1 (`IdeficsForVisionText2Text`).
    case idefics

    static let architectures = ["idefics2": "Idefics2ForConditionalGeneration", "mistral": "MistralForCausalLM",
                                "llama": "LlamaForCausalLM", "idefics": "IdeficsForVisionText2Text"]

    public init(directory: URL) throws {
        let config = try ConfigObject.required(directory: directory, by: "every checkpoint folder")
        let supported = Self.architectures.keys.sorted()
        let type = try config.choice("model_type", default: "(missing)", supported: supported, what: "this model type")
        if let names = config.values["architectures"] as? [String], let expected = Self.architectures[type],
           let other = names.first(where: { $0 != expected }) {
            throw config.error("architectures", "names \(other): for model_type \(type) only \(expected) is supported")
        }
        _ = try StoredQuantization(config: config) // a quantization we cannot read is refused before any weight
        switch type {
        case "idefics2": self = .idefics2
        case "idefics": self = .idefics
        default: self = .decoder(MistralConfig.Family(rawValue: type)!, config)
        }
    }
}
