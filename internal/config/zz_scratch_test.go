package config

import (
	"fmt"
	"testing"
)

func TestScratchProc(t *testing.T) {
	t.Setenv("VIGIL_TEST_PROC_KEY", "k")
	for _, f := range []string{"config_processors.yaml", "config_processors_problems.yaml", "config_processors_not_list.yaml", "config_processors_validate.yaml"} {
		cfg, err := Load("testdata/"+f, testRegistry{})
		fmt.Println("==", f, err)
		if cfg != nil {
			for _, p := range cfg.Processing.Processors {
				fmt.Printf("%+v %+v\n", p, p.Settings)
			}
			fmt.Println(cfg.Warnings)
		}
	}
}
