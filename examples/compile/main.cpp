// hello: greets a name a number of times; options parsed with boost::program_options.
#include <iostream>
#include <string>

#include <boost/program_options.hpp>

#include "greet.hpp"

namespace po = boost::program_options;

int main(int argc, char** argv) {
    po::options_description desc("hello: a vca compile example");
    desc.add_options()
        ("help,h", "show this help")
        ("name,n", po::value<std::string>()->default_value("world"), "who to greet")
        ("times,t", po::value<int>()->default_value(1), "how many times");
    po::variables_map vm;
    try {
        po::store(po::parse_command_line(argc, argv, desc), vm);
        po::notify(vm);
    } catch (const po::error& e) {
        std::cerr << "hello: " << e.what() << "\n" << desc;
        return 2;
    }
    if (vm.count("help")) {
        std::cout << desc;
        return 0;
    }
    for (int i = 0; i < vm["times"].as<int>(); ++i) {
        std::cout << greeting(vm["name"].as<std::string>()) << "\n";
    }
    return 0;
}
