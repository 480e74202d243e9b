#pragma once
#include <string>

// The line hello prints for one greeting.
std::string greeting(const std::string& name);
