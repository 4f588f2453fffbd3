import AISaaSCLI
import ArgumentParser
import Platform

@main
struct AISaaS: AsyncParsableCommand {
    static let configuration = AISaaSCommand.configuration

    static func main() async {
        // Before any other thread runs: it changes the environment.
        StartupEnvironment.withholdFromLibraries()
        await main(nil)
    }
}
