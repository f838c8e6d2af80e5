import Foundation
import IdeficsCheckpoint
import IdeficsModels
import IdeficsTensors
import TestSupport
import XCTest

/// The vision tower, connector and image-text merge against transformers 5.23 on the three tiny checkpoints
/// (Tests/Fixtures/vision/<model>/, scripts/make_vision_fixtures.py): position ids exactly, vision states,
/// connector output and logits within 1e-4 relative, greedy tokens where the reference's margin is clear.
final class Idefics2ParityTests: XCTestCase {
    let pool = WorkerPool(threads: 2)

    private struct Case {
        let name: String
        let inputIds: [Int]
        let images: [[String: Any]]
        let pixelValuesKey: String
        let hiddenStatesKey: String
        let logitsKey: String
        let steps: [(token: Int, margin: Float)]
    }

    private func load(_ model: String) throws -> (Idefics2, SafetensorsFile, [Case]) {
        let folder = Fixtures.url("vision/\(model)")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("reference.json"))) as! [String: Any]
        let idefics2 = try Idefics2(checkpoint: Checkpoint(directory: Fixtures.url("models/\(model)")))
        let tensors = try SafetensorsFile(path: folder.appendingPathComponent("tensors.safetensors").path)
        let cases = (json["cases"] as! [[String: Any]]).map { c in
            Case(name: c["name"] as! String, inputIds: c["input_ids"] as! [Int],
                 images: c["images_detail"] as! [[String: Any]], pixelValuesKey: c["pixel_values_key"] as! String,
                 hiddenStatesKey: c["image_hidden_states_key"] as! String, logitsKey: c["logits_key"] as! String,
                 steps: ((c["greedy"] as! [String: Any])["steps"] as! [[String: Any]]).map {
                     ($0["token"] as! Int, Float($0["margin"] as! Double))
                 })
        }
        return (idefics2, tensors, cases)
    }

    /// Image `index` of a padded [1, n, 3, H, W] tensor, cut to its real size.
    private func image(_ index: Int, of tensor: WeightTensor, height: Int, width: Int) -> PixelImage {
        let (paddedH, paddedW) = (tensor.shape[3], tensor.shape[4])
        let values = tensor.floats()
        var out = [Float]()
        for channel in 0..<3 {
            for y in 0..<height {
                let start = ((index * 3 + channel) * paddedH + y) * paddedW
                out += values[start..<start + width]
            }
        }
        return PixelImage(height: height, width: width, values: out)
    }

    private func features(_ model: Idefics2, _ c: Case, _ tensors: SafetensorsFile) throws -> [Float] {
        let pixels = try XCTUnwrap(tensors.tensor(c.pixelValuesKey))
        var rows = [Float]()
        for detail in c.images {
            let picture = image(detail["index"] as! Int, of: pixels, height: detail["height"] as! Int, width: detail["width"] as! Int)
            let (gridRows, gridColumns) = model.vision.patchGrid(height: picture.height, width: picture.width)
            let expectedIds = try XCTUnwrap(tensors.tensor(detail["position_ids_key"] as! String))
            let ids = VisionPositions.ids(rows: gridRows, columns: gridColumns, patchesPerSide: model.config.vision.patchesPerSide)
            XCTAssertEqual(ids, (0..<expectedIds.count).map { Int(expectedIds.data.load(fromByteOffset: $0 * 8, as: Int64.self)) },
                           "\(c.name) image \(detail["index"]!) position ids")
            let visionStates = model.vision.encode(picture, pool: pool)
            let expectedStates = try XCTUnwrap(tensors.tensor(detail["vision_hidden_key"] as! String)).floats()
            XCTAssertLessThan(relativeError(visionStates, expectedStates), 1e-4, "\(c.name) image \(detail["index"]!) vision states")
            rows += try model.imageFeatures(picture, pool: pool)
        }
        return rows
    }

    /// Images encoded together (one work: the products and norms over all their patches, the attention within each
    /// image) give each image's vectors exactly as alone, at float32 and bf16 products; `featureWork(taking:)` takes
    /// consecutive images while their patches fit in `patchesPerWork` (16 here): a split image's 2x3-patch crops two
    /// by two and its 4x4-patch whole alone; two 8-patch images (each past the 8 queries of the many-query attention)
    /// together. (The groups here have under 20 patches as their images alone do, so that their products take the
    /// same path.)
    func testImagesEncodedTogetherMatchEachAlone() throws {
        for precision in [ProductPrecision.float32, .bfloat16] {
            var checkpoint = try Checkpoint(directory: Fixtures.url("models/tiny-f32"))
            checkpoint.products = precision
            let model = try Idefics2(checkpoint: checkpoint)
            XCTAssertEqual(model.patchesPerWork, 16)
            let (_, tensors, cases) = try load("tiny-f32")
            for (name, grouping) in [("split_one_image", [2, 2, 1]), ("two_images", [2])] {
                let c = try XCTUnwrap(cases.first { $0.name == name })
                let pixels = try XCTUnwrap(tensors.tensor(c.pixelValuesKey))
                let pictures = c.images.map {
                    image($0["index"] as! Int, of: pixels, height: $0["height"] as! Int, width: $0["width"] as! Int)
                }
                let alone = try pictures.flatMap { try model.imageFeatures($0, pool: pool) }
                var (parts, together, imagesPerWork) = (pictures, [Float](), [Int]())
                while !parts.isEmpty {
                    var work = try model.featureWork(taking: &parts)
                    var pieces = 0
                    while work.features == nil { model.advance(&work, pool: pool); pieces += 1 }
                    XCTAssertEqual(pieces, model.config.vision.layerCount + 2, "\(name)") // embedding, layers, connector
                    together += work.features!
                    imagesPerWork.append(work.features!.count / (model.imageSequenceLength * model.config.text.hiddenSize))
                }
                XCTAssertEqual(imagesPerWork, grouping, "\(name) at \(precision)")
                XCTAssertEqual(together.count, alone.count, "\(name) at \(precision)")
                XCTAssertTrue(together == alone, "\(name) at \(precision): images encoded together differ from alone")
            }
        }
    }

    func testVisionConnectorAndLogitsMatchTransformers() throws {
        for model in ModelReference.names {
            let (idefics2, tensors, cases) = try load(model)
            for c in cases {
                let rows = try features(idefics2, c, tensors)
                let expectedRows = try XCTUnwrap(tensors.tensor(c.hiddenStatesKey)).floats()
                XCTAssertLessThan(relativeError(rows, expectedRows), 1e-4, "\(model)/\(c.name) connector output")

                var embeddings = idefics2.decoder.embed(c.inputIds)
                let hidden = idefics2.config.text.hiddenSize
                let slots = c.inputIds.indices.filter { c.inputIds[$0] == idefics2.config.imageTokenId }
                XCTAssertEqual(slots.count * hidden, rows.count, "\(model)/\(c.name) image tokens vs features")
                for (n, slot) in slots.enumerated() {
                    embeddings.replaceSubrange(slot * hidden..<(slot + 1) * hidden, with: rows[n * hidden..<(n + 1) * hidden])
                }
                var cache = idefics2.decoder.makeCache()
                var logits = idefics2.decoder.forward(embeddings, positions: Array(c.inputIds.indices), cache: &cache, pool: pool)
                let expected = try XCTUnwrap(tensors.tensor(c.logitsKey)).floats()
                XCTAssertLessThan(relativeError(logits, expected), 1e-4, "\(model)/\(c.name) logits")
                for (index, step) in c.steps.enumerated() {
                    let token = logits.indices.max { logits[$0] < logits[$1] }!
                    if step.margin > 1e-3 { XCTAssertEqual(token, step.token, "\(model)/\(c.name) step \(index)") }
                    logits = idefics2.decoder.forward(idefics2.decoder.embed([step.token]), positions: [c.inputIds.count + index],
                                                      cache: &cache, pool: pool)
                }
            }
        }
    }
}
