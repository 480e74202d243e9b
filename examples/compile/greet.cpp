#include "greet.hpp"

std::string greeting(const std::string& name) {
    return "hello, " + name + " (built by vca compile)";
}
