import XCTest
@testable import IdeficsImages

final class ResizeTests: XCTestCase {
    /// Pillow's BILINEAR (Idefics2) and BICUBIC (Idefics v1, negative lobes clipped) filters, up, down, one axis.
    func testBilinearAndBicubicMatchPillow() throws {
        let cases = try XCTUnwrap(try ImageFixtures.manifest()["resize"] as? [[String: Any]])
        XCTAssertEqual(cases.filter { $0["filter"] as? String == "bicubic" }.count, 17)
        XCTAssertEqual(cases.filter { $0["filter"] == nil }.count, 17)
        var inputs: [String: RGBImage] = [:]
        for entry in cases {
            let input = try XCTUnwrap(entry["input"] as? String)
            let width = try XCTUnwrap(entry["width"] as? Int), height = try XCTUnwrap(entry["height"] as? Int)
            if inputs[input] == nil { inputs[input] = try ImageFixtures.rgb(input) }
            let filter: PillowResize.Filter = entry["filter"] as? String == "bicubic" ? .bicubic : .bilinear
            let resized = PillowResize.resize(inputs[input]!, width: width, height: height, filter: filter)
            let expected = try ImageFixtures.rgb(try XCTUnwrap(entry["expected"] as? String))
            if resized != expected {
                let diff = difference(resized, expected)
                XCTFail("\(input) -> \(width)x\(height) \(filter): \(diff.count) samples differ, max \(diff.max)")
            }
        }
    }

    func testSameSizeIsACopy() throws {
        let image = try ImageFixtures.rgb("inputs/rgb8_n.png")
        XCTAssertEqual(PillowResize.bilinear(image, width: image.width, height: image.height), image)
    }
}
