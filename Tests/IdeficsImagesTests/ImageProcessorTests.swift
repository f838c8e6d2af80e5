import Foundation
import TestSupport
import XCTest
@testable import IdeficsImages

/// Idefics2ImageProcessorPil (transformers 5.23, Pillow 13) reproduced bit for bit: shapes, masks and float32 values.
final class ImageProcessorTests: XCTestCase {
    func testSHA256() {
        XCTAssertEqual(SHA256.hex(Array("abc".utf8)),
                       "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    func testMatchesTransformers() throws {
        let cases = try XCTUnwrap(try ImageFixtures.manifest()["process"] as? [[String: Any]])
        XCTAssertGreaterThan(cases.count, 10)
        var inputs: [String: RGBImage] = [:]
        var verified: [String: [Float]] = [:]  // images already hashed, by hash
        let processor = Idefics2ImageProcessor()
        for entry in cases {
            let name = try XCTUnwrap(entry["name"] as? String)
            let inputPaths = try XCTUnwrap(entry["inputs"] as? [[String]])
            let samples = try inputPaths.map { sample in
                try sample.map { path -> RGBImage in
                    if let image = inputs[path] { return image }
                    let image = try ImageFixtures.rgb(path)
                    inputs[path] = image
                    return image
                }
            }
            let kwargs = entry["kwargs"] as? [String: Any] ?? [:]
            let size = kwargs["size"] as? [String: Int]
            let overrides = Idefics2ImageProcessorOverrides(doImageSplitting: kwargs["do_image_splitting"] as? Bool,
                                                            longestEdge: size?["longest_edge"],
                                                            shortestEdge: size?["shortest_edge"])
            let batch = try processor.batch(samples, overrides: overrides)
            XCTAssertEqual([batch.batchSize, batch.maxImages, 3, batch.height, batch.width],
                           entry["shape"] as? [Int], name)
            XCTAssertEqual(batch.pixelValues.count, batch.batchSize * batch.maxImages * 3 * batch.height * batch.width)
            // Hashing is slow in debug builds: the whole padded array is hashed for the smaller cases; for all
            // cases each image is hashed and its placement in the padded array checked below.
            if batch.pixelValues.count <= 3_000_000 {
                XCTAssertEqual(SHA256.hex(floats: batch.pixelValues), entry["sha256"] as? String, "\(name) pixel_values")
            }
            for expected in try XCTUnwrap(entry["images"] as? [[String: Any]]) {
                let b = try XCTUnwrap(expected["sample"] as? Int), i = try XCTUnwrap(expected["index"] as? Int)
                let h = try XCTUnwrap(expected["height"] as? Int), w = try XCTUnwrap(expected["width"] as? Int)
                // The mask is exactly the h x w top-left rectangle of the slot.
                let plane = batch.height * batch.width, slot = b * batch.maxImages + i
                let mask = batch.pixelAttentionMask[(slot * plane)..<((slot + 1) * plane)]
                XCTAssertEqual(mask.reduce(0) { $0 + Int($1) }, h * w, "\(name) mask \(b),\(i)")
                if h > 0 { XCTAssertEqual(mask[slot * plane + (h - 1) * batch.width + (w - 1)], 1) }
                guard h > 0 else {
                    XCTAssertLessThan(i, batch.maxImages)
                    XCTAssertGreaterThanOrEqual(i, batch.images[b].count, "\(name): padding slot")
                    continue
                }
                let image = batch.images[b][i]
                XCTAssertEqual([image.height, image.width], [h, w], "\(name) image \(b),\(i)")
                assertPlacement(image, in: batch, slot: slot, name)
                let sha = try XCTUnwrap(expected["sha256"] as? String)
                if verified[sha] == image.values { continue }
                verified[sha] = image.values
                if SHA256.hex(floats: image.values) != sha {
                    // Say how far off: compare against the stored uint8 levels.
                    let levels = try ImageFixtures.rgb(try XCTUnwrap(expected["levels"] as? String))
                    var maxDiff = 0
                    for y in 0..<h {
                        for x in 0..<w {
                            for c in 0..<3 {
                                let mine = Int(((image.values[(c * h + y) * w + x] * 0.5 + 0.5) * 255).rounded())
                                maxDiff = max(maxDiff, abs(mine - Int(levels.pixels[(y * w + x) * 3 + c])))
                            }
                        }
                    }
                    XCTFail("\(name) image \(b),\(i): float values differ (max level difference \(maxDiff))")
                }
            }
        }
    }

    /// The image sits top-left in its padded slot and everything else in the slot is 0 (memcmp: fast in debug).
    private func assertPlacement(_ image: ProcessedImage, in batch: ProcessedBatch, slot: Int, _ name: String) {
        let zeros = [Float](repeating: 0, count: batch.width)
        var mismatches = 0
        batch.pixelValues.withUnsafeBufferPointer { all in
            image.values.withUnsafeBufferPointer { mine in
                for c in 0..<3 {
                    for y in 0..<batch.height {
                        let row = all.baseAddress! + ((slot * 3 + c) * batch.height + y) * batch.width
                        if y < image.height {
                            let source = mine.baseAddress! + (c * image.height + y) * image.width
                            mismatches += memcmp(row, source, image.width * 4) == 0 ? 0 : 1
                            mismatches += memcmp(row + image.width, zeros, (batch.width - image.width) * 4) == 0 ? 0 : 1
                        } else {
                            mismatches += memcmp(row, zeros, batch.width * 4) == 0 ? 0 : 1
                        }
                    }
                }
            }
        }
        XCTAssertEqual(mismatches, 0, "\(name): padded slot \(slot)")
    }

    func testSizeRule() {
        XCTAssertEqual(Idefics2ImageProcessor.resizedSize(height: 300, width: 1200, shortestEdge: 378,
                                                          longestEdge: 980), ImageSize(height: 378, width: 980))
        XCTAssertEqual(Idefics2ImageProcessor.resizedSize(height: 1100, width: 300, shortestEdge: 378,
                                                          longestEdge: 980), ImageSize(height: 980, width: 378))
        XCTAssertEqual(Idefics2ImageProcessor.resizedSize(height: 777, width: 1001, shortestEdge: 378,
                                                          longestEdge: 980), ImageSize(height: 760, width: 980))
    }

    func testConfigParsing() throws {
        let json = """
        {"image_processor": {"do_convert_rgb": true, "do_image_splitting": true, "do_normalize": true,
         "do_pad": true, "do_rescale": true, "do_resize": true, "image_mean": [0.5, 0.5, 0.5],
         "image_processor_type": "Idefics2ImageProcessor", "image_std": [0.5, 0.5, 0.5], "resample": 2,
         "rescale_factor": 0.00392156862745098, "size": {"longest_edge": 980, "shortest_edge": 378}},
         "processor_class": "Idefics2Processor"}
        """
        let config = try Idefics2ImageProcessorConfig(json: Data(json.utf8))
        var expected = Idefics2ImageProcessorConfig()
        expected.doImageSplitting = true
        XCTAssertEqual(config, expected)
        XCTAssertThrowsError(try Idefics2ImageProcessorConfig(json: Data(#"{"resample": 0}"#.utf8))) { error in
            XCTAssertEqual("\(error)", "preprocessor_config.json: resample is 0; only 2 (BILINEAR) and 3 (BICUBIC) "
                           + "are supported")
        }
        XCTAssertThrowsError(try Idefics2ImageProcessorConfig(json: Data(#"{"size": {"shortest_edge": 3}}"#.utf8))) {
            XCTAssertEqual("\($0)", "preprocessor_config.json: size must contain shortest_edge and longest_edge, "
                           + "or height and width")
        }
    }

    func testSplittingTooSmallImageThrows() {
        let tiny = RGBImage(width: 1, height: 5, pixels: [UInt8](repeating: 9, count: 15))
        XCTAssertThrowsError(try Idefics2ImageProcessor().process(tiny, overrides: .init(doImageSplitting: true))) {
            XCTAssertEqual("\($0)", "image processor: a 1x5 image is too small to split")
        }
    }
}
