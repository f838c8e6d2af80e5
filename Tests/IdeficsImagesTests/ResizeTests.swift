import XCTest
@testable import IdeficsImages

final class ResizeTests: XCTestCase {
    func testBilinearMatchesPillow() throws {
        let cases = try XCTUnwrap(try ImageFixtures.manifest()["resize"] as? [[String: Any]])
        XCTAssertGreaterThan(cases.count, 10)
        var inputs: [String: RGBImage] = [:]
        for entry in cases {
            let input = try XCTUnwrap(entry["input"] as? String)
            let width = try XCTUnwrap(entry["width"] as? Int), height = try XCTUnwrap(entry["height"] as? Int)
            if inputs[input] == nil { inputs[input] = try ImageFixtures.rgb(input) }
            let resized = PillowResize.bilinear(inputs[input]!, width: width, height: height)
            let expected = try ImageFixtures.rgb(try XCTUnwrap(entry["expected"] as? String))
            if resized != expected {
                let diff = difference(resized, expected)
                XCTFail("\(input) -> \(width)x\(height): \(diff.count) samples differ, max \(diff.max)")
            }
        }
    }

    func testSameSizeIsACopy() throws {
        let image = try ImageFixtures.rgb("inputs/rgb8_n.png")
        XCTAssertEqual(PillowResize.bilinear(image, width: image.width, height: image.height), image)
    }
}
