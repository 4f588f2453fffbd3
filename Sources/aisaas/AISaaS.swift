import AISaaSCLI
import ArgumentParser

@main
struct AISaaS: AsyncParsableCommand {
    static let configuration = AISaaSCommand.configuration
}
