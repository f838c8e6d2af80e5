import Foundation
import FuzzSupport

/// One JSON file through every config reader: config.json (Idefics2, Mistral/Llama, Idefics v1),
/// generation_config.json (and the parameters built from it) and preprocessor_config.json. Errors are the
/// expected outcome; a trap, a hang or an out-of-range value accepted is a finding.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Data(UnsafeBufferPointer(start: data, count: size))
    if let object = try? JSONSerialization.jsonObject(with: bytes) as? [String: Any] {
        let config = ConfigObject(path: "config.json", values: object)
        if let parsed = try? Idefics2Config(config) {
            precondition(parsed.text.headDim > 0 && parsed.text.headDim % 2 == 0, "head size accepted: \(parsed.text.headDim)")
            precondition(parsed.text.rmsNormEps > 0 && parsed.vision.layerNormEps > 0, "epsilon accepted")
            precondition(parsed.text.headCount % parsed.text.keyValueHeadCount == 0, "head grouping accepted")
        }
        for family in [MistralConfig.Family.mistral, .llama] { _ = try? MistralConfig(config, family: family) }
        _ = try? IdeficsConfig(config)
    }
    if let generation = try? JSONDecoder().decode(GenerationConfig.self, from: bytes) {
        _ = try? GenerationParameters(config: generation)
    }
    if let processor = try? Idefics2ImageProcessorConfig(json: bytes) {
        precondition(processor.imageStd.allSatisfy { $0 > 0 && $0.isFinite }, "image_std accepted: \(processor.imageStd)")
        precondition((1...Idefics2ImageProcessorConfig.maxEdge).contains(processor.longestEdge), "edge accepted")
    }
    return 0
}
