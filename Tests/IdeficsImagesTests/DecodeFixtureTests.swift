import XCTest
@testable import IdeficsImages

/// Every decode fixture must match Pillow exactly, through both of transformers' RGB conversions.
final class DecodeFixtureTests: XCTestCase {
    func testDecodedImagesMatchPillow() throws {
        let cases = try XCTUnwrap(try ImageFixtures.manifest()["decode"] as? [[String: Any]])
        XCTAssertGreaterThan(cases.count, 50)
        for entry in cases {
            let input = try XCTUnwrap(entry["input"] as? String)
            let decoded = try ImageDecoder.decode(.file(ImageFixtures.path(input)))
            XCTAssertEqual(decoded.width, entry["width"] as? Int, input)
            XCTAssertEqual(decoded.height, entry["height"] as? Int, input)
            // Processor path: `convert_to_rgb` on the PIL image (composite onto white, no EXIF transpose).
            let expected = try ImageFixtures.rgb(try XCTUnwrap(entry["expected"] as? String))
            let composited = decoded.rgb(transparency: .compositeOnWhite)
            XCTAssertEqual(composited.width, expected.width, input)
            XCTAssertEqual(composited.height, expected.height, input)
            if composited != expected {
                let diff = difference(composited, expected)
                XCTFail("\(input): \(diff.count) samples differ, max \(diff.max), mean \(diff.mean)")
            }
            // load_image path: exif_transpose, then convert("RGB") which drops alpha.
            let loadImageExpected = try (entry["expected_load_image"] as? String).map(ImageFixtures.rgb) ?? expected
            let loaded = try ImageDecoder.loadRGB(.file(ImageFixtures.path(input)),
                                                  options: ImageLoadOptions(transparency: .discard))
            XCTAssertTrue(loaded == loadImageExpected, "\(input) (load_image path)")
        }
    }
}
