import Foundation
import IdeficsCheckpoint
import TestSupport

/// One prompt of a tiny checkpoint's reference.json, as transformers ran it (scripts/make_model_fixtures.py).
struct ReferenceCase {
    struct Step {
        let token: Int
        let margin: Float
    }

    let name: String
    let inputIds: [Int]
    let logitsKey: String
    let allLogitsKey: String?
    let steps: [Step]
}

struct ModelReference {
    static let names = ["tiny-f32", "tiny-bf16-swa", "tiny-f16-sharded"]

    let directory: URL
    let cases: [ReferenceCase]
    let logits: SafetensorsFile

    init(_ name: String) throws {
        directory = Fixtures.url("models/\(name)")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("reference.json"))) as! [String: Any]
        cases = (json["cases"] as! [[String: Any]]).map { c in
            let greedy = c["greedy"] as! [String: Any]
            let steps = (greedy["steps"] as! [[String: Any]]).map {
                ReferenceCase.Step(token: $0["token"] as! Int, margin: Float($0["margin"] as! Double))
            }
            return ReferenceCase(name: c["name"] as! String, inputIds: c["input_ids"] as! [Int],
                                 logitsKey: c["logits_key"] as! String, allLogitsKey: c["all_logits_key"] as? String,
                                 steps: steps)
        }
        logits = try SafetensorsFile(path: directory.appendingPathComponent(json["logits_file"] as! String).path)
    }
}

/// Largest absolute difference, relative to the largest reference magnitude.
func relativeError(_ actual: [Float], _ expected: [Float]) -> Float {
    precondition(actual.count == expected.count, "\(actual.count) values vs \(expected.count)")
    let scale = max(expected.map(abs).max() ?? 1, 1e-6)
    return zip(actual, expected).map { abs($0 - $1) }.max()! / scale
}
